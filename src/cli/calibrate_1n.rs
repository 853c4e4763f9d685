//! `jpki-face calibrate --distractors …`: the 1:N calibration run. Embeds the labelled folders and the
//! distractors on the face engine, builds one exact [`Gallery`], runs the mate and non-mate searches
//! (printed one a line) and writes the report of [`crate::face::calibration_1n`] (the maths lives
//! there), with the FMR table that `face::identification` embeds.

use super::calibrate::{embed_all, list_identity_folders, Embedded};
use super::start_engine as start;
use super::CalibrateArgs;
use crate::face::calibration_1n::{self as c1n, MateSearch, NonMateSearch};
use crate::face::gallery::{Gallery, ModelTag};
use crate::face::{FaceConfig, FaceEngine, Template};
use anyhow::{bail, Context};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// Candidates per search, as an API search would return at most.
const LIMIT: usize = 10;
/// The FMR table reaches down to 1e-12 per comparison (FPIR 1e-3 at ten million templates: 1e-10).
const TABLE_MIN_LOG10: f64 = -12.0;

/// One photo of the run: where it is and whom it shows.
struct Photo {
    /// Cache key: `c/<identity>/<file>` or `d/<file>`.
    key: String,
    identity: String,
    template: Option<Template>,
}

/// Distractor files `<identity>.<ext>` directly under `root`, sorted, as (file name, identity).
fn list_flat(root: &Path) -> anyhow::Result<Vec<(String, String)>> {
    const EXT: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
    let mut out = Vec::new();
    for f in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let f = f?;
        let name = f.file_name().to_string_lossy().into_owned();
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if f.path().is_file() && EXT.contains(&ext.to_ascii_lowercase().as_str()) {
            out.push((name.clone(), stem.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// Pairs of identity names that show the same person (aliases, or one photo filed under two names),
/// from a `a<TAB>b[<TAB>why]` file (a header line; `#` lines are comments), in both orders.
fn read_same_person(path: &Path) -> anyhow::Result<HashSet<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut set = HashSet::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [a, b, ..] = cols[..] else {
            bail!("{}:{}: want a<TAB>b[<TAB>why]", path.display(), n + 1);
        };
        set.insert((a.to_string(), b.to_string()));
        set.insert((b.to_string(), a.to_string()));
    }
    Ok(set)
}

/// The cache: one line per image, `key<TAB>hex(template)` or `key<TAB>!failure_code`.
fn read_cache(path: &Path) -> anyhow::Result<HashMap<String, Embedded>> {
    let mut map = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(map);
    };
    for (n, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once('\t') else {
            bail!("{}:{}: want key<TAB>value", path.display(), n + 1);
        };
        let e = match value.strip_prefix('!') {
            Some(code) => Embedded::Rejected(code.to_string()),
            None => {
                let bytes = hex::decode(value)
                    .with_context(|| format!("{}:{}: not hex", path.display(), n + 1))?;
                Embedded::Template(
                    Template::from_bytes(&bytes)
                        .with_context(|| format!("{}:{}", path.display(), n + 1))?,
                )
            }
        };
        map.insert(key.to_string(), e);
    }
    Ok(map)
}

fn write_cache(path: &Path, map: &HashMap<String, Embedded>) -> anyhow::Result<()> {
    let sorted: BTreeMap<&String, &Embedded> = map.iter().collect();
    let mut out = String::new();
    for (k, e) in sorted {
        match e {
            Embedded::Template(t) => out.push_str(&format!("{k}\t{}\n", hex::encode(t.to_bytes()))),
            Embedded::Rejected(code) => out.push_str(&format!("{k}\t!{code}\n")),
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Embeds `(relative path, identity)` under `root` (what the cache lacks), keyed with `prefix`.
fn embed_listed(
    engine: &mut Option<FaceEngine>,
    cfg: &FaceConfig,
    cache: &mut HashMap<String, Embedded>,
    root: &Path,
    prefix: &str,
    listed: &[(String, String)],
) -> anyhow::Result<Vec<Photo>> {
    let missing: Vec<String> = listed
        .iter()
        .filter(|(rel, _)| !cache.contains_key(&format!("{prefix}{rel}")))
        .map(|(rel, _)| rel.clone())
        .collect();
    if !missing.is_empty() {
        if engine.is_none() {
            *engine = Some(start(cfg)?);
        }
        let e = engine.as_ref().context("face engine")?;
        let started = std::time::Instant::now();
        for (rel, r) in embed_all(e, root, &missing) {
            cache.insert(format!("{prefix}{rel}"), r);
        }
        eprintln!(
            "calibrate: embedded {} images of {} in {:.1} s",
            missing.len(),
            root.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(listed
        .iter()
        .map(|(rel, identity)| {
            let key = format!("{prefix}{rel}");
            let template = match cache.get(&key) {
                Some(Embedded::Template(t)) => Some(t.clone()),
                _ => None,
            };
            Photo {
                key,
                identity: identity.clone(),
                template,
            }
        })
        .collect())
}

pub(super) fn run(args: CalibrateArgs, cfg: &FaceConfig) -> anyhow::Result<()> {
    let distractor_root = args.distractors.clone().context("--distractors")?;
    let every = args.holdout_every as usize;
    let mut cache = match &args.template_cache {
        Some(p) => read_cache(p)?,
        None => HashMap::new(),
    };
    let same_person = match &args.same_person {
        Some(p) => read_same_person(p)?,
        None => HashSet::new(),
    };
    // A gallery entry that shows the probe's own person under another name is no candidate of
    // either kind: it is left out of that search.
    let other_person =
        |probe: &str, entry: &str| !same_person.contains(&(probe.to_string(), entry.to_string()));
    let mut engine: Option<FaceEngine> = None;
    let labelled = list_identity_folders(&args.images)?;
    let flat = list_flat(&distractor_root)?;
    if labelled.is_empty() || flat.is_empty() {
        bail!("no images under --images or --distractors");
    }
    let photos = embed_listed(&mut engine, cfg, &mut cache, &args.images, "c/", &labelled)?;
    let distractors = embed_listed(&mut engine, cfg, &mut cache, &distractor_root, "d/", &flat)?;
    if let Some(p) = &args.template_cache {
        write_cache(p, &cache)?;
    }
    let mut rejected: HashMap<String, usize> = HashMap::new();
    for p in photos.iter().chain(&distractors) {
        if let Some(Embedded::Rejected(code)) = cache.get(&p.key) {
            *rejected.entry(code.clone()).or_default() += 1;
        }
    }

    // Identities in name order; every `every`-th (the last of each run of `every`) is held out.
    let mut by_identity: BTreeMap<&str, Vec<&Photo>> = BTreeMap::new();
    for p in &photos {
        by_identity.entry(&p.identity).or_default().push(p);
    }
    let first = photos
        .iter()
        .chain(&distractors)
        .find_map(|p| p.template.as_ref())
        .context("no image gave a template")?;
    let mut gallery: Gallery<u32> = Gallery::new(ModelTag::of(first));
    let mut names: Vec<String> = Vec::new();
    let mut mate_probes: Vec<(&Photo, u32)> = Vec::new();
    let mut held_out: Vec<&Photo> = Vec::new();
    let (mut enrolled, mut held_identities) = (0usize, 0usize);
    for (i, (identity, list)) in by_identity.iter().enumerate() {
        let with_face: Vec<&&Photo> = list.iter().filter(|p| p.template.is_some()).collect();
        if i % every == every - 1 {
            held_identities += 1;
            held_out.extend(with_face.iter().map(|p| **p));
            continue;
        }
        // The first photo with a template is the enrollment; the others search for it.
        let Some((enroll, rest)) = with_face.split_first() else {
            continue;
        };
        let id = names.len() as u32;
        names.push(identity.to_string());
        gallery.insert(id, enroll.template.as_ref().context("template")?)?;
        enrolled += 1;
        mate_probes.extend(rest.iter().map(|p| (**p, id)));
    }
    let mut distractor_ids: Vec<(u32, &Photo)> = Vec::new();
    for p in &distractors {
        if let Some(t) = &p.template {
            let id = names.len() as u32;
            names.push(p.identity.clone());
            gallery.insert(id, t)?;
            distractor_ids.push((id, p));
        }
    }
    let n = gallery.len();
    eprintln!(
        "calibrate 1:N: gallery {n} = {enrolled} enrolled + {} distractors; {} mate probes; {} held-out identities, {} probes",
        distractor_ids.len(),
        mate_probes.len(),
        held_identities,
        held_out.len()
    );

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // Mates: the exact search, unthresholded, for the mate's rank; its score by the same kernel.
    let mut mates = Vec::with_capacity(mate_probes.len());
    for (p, mate) in &mate_probes {
        let t = p.template.as_ref().context("template")?;
        let mut all = gallery.search(t, f32::NEG_INFINITY, n)?;
        all.retain(|h| other_person(&p.identity, &names[h.id as usize]));
        let pos = all
            .iter()
            .position(|h| h.id == *mate)
            .context("mate in gallery")?;
        let m = MateSearch {
            mate_score: all[pos].score,
            mate_rank: pos + 1,
        };
        writeln!(
            out,
            "mate {} rank {} score {:.4} top1 {} {:.4}",
            p.key, m.mate_rank, m.mate_score, names[all[0].id as usize], all[0].score
        )?;
        mates.push(m);
    }
    // Non-mates: every score against the whole gallery (a distractor: against all but itself).
    let mut non_mates = Vec::new();
    let mut pooled: Vec<f32> = Vec::new();
    for p in &held_out {
        let t = p.template.as_ref().context("template")?;
        let scores: Vec<f32> = gallery
            .search(t, f32::NEG_INFINITY, n)?
            .into_iter()
            .filter(|h| other_person(&p.identity, &names[h.id as usize]))
            .map(|h| h.score)
            .collect();
        pooled.extend(&scores);
        let s = NonMateSearch::new(scores);
        writeln!(out, "nonmate {} max {:.4}", p.key, s.max())?;
        non_mates.push(s);
    }
    for (id, p) in &distractor_ids {
        let t = p.template.as_ref().context("template")?;
        let mut hits = gallery.search(t, f32::NEG_INFINITY, n)?;
        hits.retain(|h| other_person(&p.identity, &names[h.id as usize]));
        // Each distractor pair is pooled once (the lower id's search holds it); pairs with the
        // enrolled photos are pooled here too (those identities never search the distractors).
        let first_distractor = distractor_ids[0].0;
        pooled.extend(
            hits.iter()
                .filter(|h| h.id > *id || h.id < first_distractor)
                .map(|h| h.score),
        );
        let s = NonMateSearch::new(
            hits.into_iter()
                .filter(|h| h.id != *id)
                .map(|h| h.score)
                .collect(),
        );
        writeln!(out, "nonmate {} max {:.4}", p.key, s.max())?;
        non_mates.push(s);
    }
    out.flush()?;
    drop(out);
    if mates.is_empty() || non_mates.is_empty() {
        bail!("1:N calibration needs mate and non-mate searches");
    }
    let table = c1n::fmr_table(&pooled, TABLE_MIN_LOG10);
    let model = match &engine {
        Some(e) => e.model_label(),
        None => format!(
            "{}@{}",
            first.model_id,
            &first.model_hash[..12.min(first.model_hash.len())]
        ),
    };
    let mut rejected: Vec<(String, usize)> = rejected.into_iter().collect();
    rejected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let report = c1n::report(&c1n::Run {
        data: &args.data,
        model: &model,
        gallery: n,
        enrolled_identities: enrolled,
        distractors: distractor_ids.len(),
        held_out_identities: held_identities,
        mates: &mates,
        non_mates: &non_mates,
        held_out_probes: held_out.len(),
        pooled_comparisons: pooled.len(),
        table: &table,
        limit: LIMIT,
        rejected_images: &rejected,
    });
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(args.out.join("report-1n.md"), &report)?;
    eprintln!(
        "calibrate 1:N: {} mate and {} non-mate searches; wrote {}",
        mates.len(),
        non_mates.len(),
        args.out.join("report-1n.md").display()
    );
    Ok(())
}
