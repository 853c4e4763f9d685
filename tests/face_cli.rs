//! The operator commands end to end through the real binary: `face compare` prints the documented
//! JSON, `calibrate` prints one line per pair and writes a loadable table and a DET plot.
//! Needs `scripts/fetch-models.sh` (`make models`).

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jpki_face() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jpki-face"));
    // The default config resolves `models/` against the working directory.
    c.current_dir(root()).env("JPKI_FACE__LOG__FILTER", "warn");
    c
}

fn assert_models() {
    assert!(
        root()
            .join("models/face_recognition_sface_2021dec.onnx")
            .is_file(),
        "run scripts/fetch-models.sh (make models) before these tests"
    );
}

#[test]
fn face_compare_prints_score_threshold_decision_and_quality() {
    assert_models();
    let out = jpki_face()
        .args([
            "face",
            "compare",
            "models/samples/Female_42_1_1_1.jpg",
            "models/samples/Female_42_1_1_1.jpg",
        ])
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(v["score"].as_f64().unwrap() > 0.99, "{v}");
    assert_eq!(v["decision"], "match");
    assert_eq!(v["target_fmr"], 1e-4);
    assert!(v["threshold"].as_f64().unwrap() > 0.3);
    assert!(v["model"].as_str().unwrap().starts_with("sface-2021dec@"));
    assert_eq!(v["a"]["quality"]["result"], "pass");
    assert!(v["a"]["quality"]["failed"].as_array().unwrap().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(320, 240, image::Rgb([90, 120, 200]))
        .save(&blank)
        .unwrap();
    let out = jpki_face()
        .args(["face", "compare", "models/samples/Female_42_1_1_1.jpg"])
        .arg(&blank)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["decision"], "quality_failed");
    assert!(v["score"].is_null());
    assert_eq!(v["b"]["quality"]["failed"][0], "selfie_no_face");
}

#[test]
fn calibrate_prints_every_pair_and_writes_table_and_plot() {
    assert_models();
    let images = root().join("../shared/data/faces/calibration");
    let all =
        std::fs::read_to_string(images.join("pairs.tsv")).expect("the shared labelled face set");
    // A small slice: the first 30 genuine and the first 60 impostor pairs.
    let lines: Vec<&str> = all.lines().skip(1).collect();
    let mut pick: Vec<&str> = lines
        .iter()
        .filter(|l| l.ends_with("\t1"))
        .take(30)
        .copied()
        .collect();
    pick.extend(lines.iter().filter(|l| l.ends_with("\t0")).take(60));
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.tsv");
    std::fs::write(&pairs, format!("a\tb\tsame\n{}\n", pick.join("\n"))).unwrap();
    let out_dir = dir.path().join("out");
    let out = jpki_face()
        .arg("calibrate")
        .arg("--pairs")
        .arg(&pairs)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), pick.len(), "one line per pair");
    let mut scored = 0;
    for (line, pair) in printed.iter().zip(&pick) {
        let f: Vec<&str> = line.split(' ').collect();
        let p: Vec<&str> = pair.split('\t').collect();
        assert_eq!(&f[..3], &p[..], "{line}");
        if f[3].parse::<f32>().is_ok() {
            scored += 1;
        } else {
            assert!(f[3].starts_with("selfie_"), "a failure code: {line}");
        }
    }
    assert!(scored > pick.len() / 2, "{stdout}");
    let table =
        std::fs::read_to_string(out_dir.join("face-calibration.toml")).expect("table written");
    let t = jpki_face::face::CalibrationTable::parse(&table).expect("table loads");
    assert!(t.genuine_pairs > 0 && t.impostor_pairs > 0);
    assert!(t.threshold_for_fmr(1e-5).score >= t.threshold_for_fmr(1e-2).score);
    let svg = std::fs::read_to_string(out_dir.join("face-det.svg")).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.contains("<path"));
}

/// Without `--pairs`, `calibrate` scores every pair of images (identity = folder), reports the labelled
/// subset of `manifest.tsv` separately, and writes a table whose empirical points are the measured ones.
#[test]
fn calibrate_scores_every_pair_of_the_identity_folders() {
    assert_models();
    let images = root().join("../shared/data/faces/calibration");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    // Symbolic links to a few identities of the shared set (the photos are used by path, never copied).
    let ids = [
        "Aaron_Peirsol",
        "Amanda_Beard",
        "Bob_Dole",
        "asianfaces_cn_102",
    ];
    let mut files = Vec::new();
    for id in ids {
        std::fs::create_dir_all(set.join(id)).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(images.join(id))
            .expect("the shared labelled face set")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names.iter().take(3) {
            std::os::unix::fs::symlink(images.join(id).join(n), set.join(id).join(n)).unwrap();
            files.push(format!("{id}/{n}"));
        }
    }
    let manifest: String = files
        .iter()
        .map(|f| format!("{f}\t{}\n", u8::from(f.starts_with("asianfaces"))))
        .collect();
    std::fs::write(
        set.join("manifest.tsv"),
        format!("path\teast_asian\n{manifest}"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = jpki_face()
        .arg("calibrate")
        .arg("--images")
        .arg(&set)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let n = files.len();
    assert_eq!(stdout.lines().count(), n * (n - 1) / 2, "every pair once");
    let (mut genuine, mut impostor) = (0, 0);
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let same = f[0].split('/').next() == f[1].split('/').next();
        assert_eq!(f[2], if same { "1" } else { "0" }, "{line}");
        if f[3].parse::<f32>().is_ok() {
            if same {
                genuine += 1
            } else {
                impostor += 1
            }
        }
    }
    let table = std::fs::read_to_string(out_dir.join("face-calibration.toml")).unwrap();
    let t = jpki_face::face::CalibrationTable::parse(&table).expect("table loads");
    assert_eq!((t.genuine_pairs, t.impostor_pairs), (genuine, impostor));
    assert_eq!(
        t.genuine_pairs + t.impostor_pairs + t.rejected_pairs,
        n * (n - 1) / 2
    );
    let report = std::fs::read_to_string(out_dir.join("report.md")).expect("report written");
    assert!(report.contains("East-Asian subset"), "{report}");
    assert!(report.contains("95 % CI"), "{report}");
}

/// `calibrate --distractors` (1:N): a gallery of one photo per enrolled identity plus the distractors,
/// one line per mate and non-mate search, the report with its FMR table; a re-run from the template
/// cache prints the same searches without the face engine's work.
#[test]
fn calibrate_1n_searches_a_gallery_of_identities_and_distractors() {
    assert_models();
    let faces = root().join("../shared/data/faces");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    let filler = dir.path().join("distractors");
    std::fs::create_dir_all(&filler).unwrap();
    // Symbolic links to a few identities and distractors of the shared set (used by path, never copied).
    let ids = [
        "Aaron_Peirsol",
        "Amanda_Beard",
        "Bob_Dole",
        "Alvaro_Uribe",
        "Ann_Veneman",
        "Anthony_LaPaglia",
    ];
    for id in ids {
        std::fs::create_dir_all(set.join(id)).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(faces.join("calibration").join(id))
            .expect("the shared labelled face set")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names.iter().take(3) {
            std::os::unix::fs::symlink(
                faces.join("calibration").join(id).join(n),
                set.join(id).join(n),
            )
            .unwrap();
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(faces.join("distractors"))
        .expect("the shared distractors")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names.iter().take(12) {
        std::os::unix::fs::symlink(faces.join("distractors").join(n), filler.join(n)).unwrap();
    }
    let cache = dir.path().join("templates.tsv");
    let run = |out_dir: &std::path::Path| {
        let out = jpki_face()
            .arg("calibrate")
            .arg("--images")
            .arg(&set)
            .arg("--distractors")
            .arg(&filler)
            .arg("--template-cache")
            .arg(&cache)
            .arg("--out")
            .arg(out_dir)
            .output()
            .expect("binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (stdout, stderr) = run(&dir.path().join("out1"));
    let mates: Vec<&str> = stdout.lines().filter(|l| l.starts_with("mate ")).collect();
    let non_mates: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("nonmate "))
        .collect();
    assert_eq!(mates.len() + non_mates.len(), stdout.lines().count());
    // Identities 3 and 6 (every third, by name) are held out: Amanda_Beard and Bob_Dole.
    assert!(non_mates.iter().any(|l| l.contains("c/Amanda_Beard/")));
    assert!(non_mates.iter().any(|l| l.contains("c/Bob_Dole/")));
    assert!(mates
        .iter()
        .all(|l| !l.contains("Amanda_Beard/") && !l.contains("Bob_Dole/")));
    assert!(
        non_mates.iter().filter(|l| l.contains(" d/")).count() >= 10,
        "{stdout}"
    );
    assert!(!mates.is_empty(), "{stdout}");
    // On these photos nearly every mate is found at rank 1.
    let rank1 = mates.iter().filter(|l| l.contains(" rank 1 ")).count();
    assert!(rank1 * 4 >= mates.len() * 3, "{stdout}");
    assert!(stderr.contains("embedded"), "{stderr}");
    let report = std::fs::read_to_string(dir.path().join("out1/report-1n.md")).unwrap();
    assert!(report.contains("FNIR at a measured FPIR") && report.contains("pub const TABLE"));
    // Second run: every template comes from the cache, the searches are the same.
    let (again, stderr) = run(&dir.path().join("out2"));
    assert_eq!(again, stdout);
    assert!(!stderr.contains("embedded"), "{stderr}");
}

/// `face mask-synth` makes masked faces from calibration photos (into a temp dir) and `face mask-eval`
/// counts them: the masked copies are caught, the originals are not flagged.
#[test]
fn mask_eval_counts_synthetic_masked_faces_and_their_originals() {
    assert_models();
    let photos = tempfile::tempdir().unwrap();
    let person = root().join("../shared/data/faces/calibration/Pierce_Brosnan");
    let unmasked = photos.path().join("without_mask");
    std::fs::create_dir_all(&unmasked).unwrap();
    for f in [
        "Pierce_Brosnan_0002.jpg",
        "Pierce_Brosnan_0005.jpg",
        "Pierce_Brosnan_0006.jpg",
    ] {
        std::fs::copy(person.join(f), unmasked.join(f)).unwrap();
    }
    let masked = photos.path().join("with_mask");
    let out = jpki_face()
        .args(["face", "mask-synth"])
        .arg(&unmasked)
        .arg("--out")
        .arg(&masked)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&masked).unwrap().count(), 3);
    let out = jpki_face()
        .args(["face", "mask-eval", "--json"])
        .arg(photos.path())
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["masked"], 3);
    assert_eq!(v["unmasked"], 3);
    assert_eq!(v["detection_rate"], 1.0, "{v:#}");
    assert_eq!(v["false_alarm_rate"], 0.0, "{v:#}");
    assert_eq!(v["table"].as_array().unwrap().len(), 12);
}
