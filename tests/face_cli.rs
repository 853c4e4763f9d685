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
