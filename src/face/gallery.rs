//! 1:N face search, the core of issue 21: an exact in-memory gallery of one model's templates.
//!
//! The rows are one contiguous row-major matrix of L2-normalised 128-d `f32` vectors, with a parallel
//! list of ids and an id → row map, so an upsert or a removal is O(1) (removal swaps the last row in).
//! Beside it lies a compact copy (`quant`): each row as 128 `i8` codes with a per-row scale and a
//! proven error bound. A search scores **every** row of the compact copy (a quarter of the memory
//! traffic; no approximate index: HNSW and friends miss planted duplicates) and re-ranks in exact `f32`
//! every row whose compact score is within the bound of the cut-off (the threshold, or the k-th best
//! exact score so far). So the answer, scores included, is the exact `f32` search's by construction,
//! and recall is 100 %. The kernels are plain safe Rust written so that LLVM vectorises them
//! (independent accumulators over fixed-size rows); a batch of up to 64 queries reads the matrix from
//! memory once, block by block, instead of once per query.
//!
//! Not wired into the service yet: no API, no feed from the store. See docs/performance.md.

mod quant;

use super::template::{ModelMismatch, Template};
use quant::{QueryCode, RowCode};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::RwLock;

/// The dimension of an SFace embedding.
pub const DIM: usize = 128;
/// How many queries one pass over the matrix serves (`search_batch` splits larger batches).
pub const MAX_BATCH: usize = 64;
/// Rows per block in a scan: 256 rows × 136 bytes of compact codes = 34 KiB, which stays in L1/L2
/// while every query of the batch (64 × 256 bytes of codes) is scored against it.
const BLOCK_ROWS: usize = 256;
/// Independent accumulators in the kernel: enough for LLVM to fill SIMD registers without a serial
/// dependency on one sum.
const LANES: usize = 8;

/// What a gallery's templates were made by: model id, model hash and preprocessing version. Templates
/// of a different tag are refused, never compared (house rule 6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelTag {
    pub model_id: String,
    pub model_hash: String,
    pub preprocessing_version: u16,
}

impl ModelTag {
    pub fn of(template: &Template) -> ModelTag {
        ModelTag {
            model_id: template.model_id.clone(),
            model_hash: template.model_hash.clone(),
            preprocessing_version: template.preprocessing_version,
        }
    }

    fn matches(&self, t: &Template) -> bool {
        self.model_id == t.model_id
            && self.model_hash == t.model_hash
            && self.preprocessing_version == t.preprocessing_version
    }

    fn label(&self) -> String {
        format!(
            "{}@{}/p{}",
            self.model_id, self.model_hash, self.preprocessing_version
        )
    }
}

/// Why a template or a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GalleryError {
    #[error(transparent)]
    ModelMismatch(#[from] ModelMismatch),
    #[error("template has {got} dimensions, the gallery holds {DIM}")]
    WrongDimension { got: usize },
    #[error("template holds a NaN or infinite value")]
    NotFinite,
    #[error("template is the zero vector: it has no direction to compare")]
    ZeroVector,
    #[error("the score threshold is NaN")]
    InvalidThreshold,
}

/// An id a gallery can hold. `heap_bytes` is what one id owns outside itself, for `memory_bytes`.
pub trait GalleryId: Clone + Eq + Hash + Ord {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl GalleryId for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}
impl GalleryId for u32 {}
impl GalleryId for u64 {}
impl GalleryId for u128 {}

/// One search result. `rank` starts at 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<K> {
    pub id: K,
    pub score: f32,
    pub rank: usize,
}

/// An exact 1:N gallery of one model's templates. Its `Debug` shows no vector (personal data).
pub struct Gallery<K: GalleryId = String> {
    model: ModelTag,
    /// Row-major, contiguous: `rows[i]` is the unit vector of `ids[i]`.
    rows: Vec<[f32; DIM]>,
    /// The compact copy the scan reads: `codes[i]`, `scales[i]`, `errs[i]` code `rows[i]`.
    codes: Vec<[i8; DIM]>,
    scales: Vec<f32>,
    errs: Vec<f32>,
    ids: Vec<K>,
    index: HashMap<K, usize>,
    /// Heap bytes owned by the ids, counted twice (the id list and the map's keys).
    id_heap_bytes: usize,
}

impl<K: GalleryId> fmt::Debug for Gallery<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gallery")
            .field("model", &self.model)
            .field("len", &self.rows.len())
            .field("rows", &"[redacted]")
            .finish()
    }
}

impl<K: GalleryId> Gallery<K> {
    pub fn new(model: ModelTag) -> Gallery<K> {
        Gallery {
            model,
            rows: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            errs: Vec::new(),
            ids: Vec::new(),
            index: HashMap::new(),
            id_heap_bytes: 0,
        }
    }

    /// An empty gallery with room for `n` templates (a build from the store knows its count).
    pub fn with_capacity(model: ModelTag, n: usize) -> Gallery<K> {
        Gallery {
            model,
            rows: Vec::with_capacity(n),
            codes: Vec::with_capacity(n),
            scales: Vec::with_capacity(n),
            errs: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
            id_heap_bytes: 0,
        }
    }

    pub fn model(&self) -> &ModelTag {
        &self.model
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn contains(&self, id: &K) -> bool {
        self.index.contains_key(id)
    }

    /// Adds or replaces `id`'s template (normalised here). Returns `true` when it replaced one.
    pub fn insert(&mut self, id: K, template: &Template) -> Result<bool, GalleryError> {
        let row = self.checked_unit(template)?;
        let RowCode { code, scale, err } = quant::code_row(&row);
        if let Some(&i) = self.index.get(&id) {
            self.rows[i] = row;
            self.codes[i] = code;
            self.scales[i] = scale;
            self.errs[i] = err;
            return Ok(true);
        }
        self.id_heap_bytes += 2 * id.heap_bytes();
        self.index.insert(id.clone(), self.rows.len());
        self.ids.push(id);
        self.rows.push(row);
        self.codes.push(code);
        self.scales.push(scale);
        self.errs.push(err);
        Ok(false)
    }

    /// Removes `id`; the last row moves into its place. Returns whether it was there.
    pub fn remove(&mut self, id: &K) -> bool {
        let Some(i) = self.index.remove(id) else {
            return false;
        };
        self.rows.swap_remove(i);
        self.codes.swap_remove(i);
        self.scales.swap_remove(i);
        self.errs.swap_remove(i);
        let gone = self.ids.swap_remove(i);
        self.id_heap_bytes -= 2 * gone.heap_bytes();
        if let Some(moved) = self.ids.get(i) {
            self.index.insert(moved.clone(), i);
        }
        true
    }

    /// Bytes held: the matrix, its compact copy, the id list and the id map (by capacity), and what the
    /// ids own on the heap. The map's per-entry cost is an estimate of hashbrown's layout (key, value,
    /// one control byte).
    pub fn memory_bytes(&self) -> usize {
        let matrix = self.rows.capacity() * DIM * std::mem::size_of::<f32>()
            + self.codes.capacity() * DIM
            + (self.scales.capacity() + self.errs.capacity()) * std::mem::size_of::<f32>();
        let ids = self.ids.capacity() * std::mem::size_of::<K>();
        let map =
            self.index.capacity() * (std::mem::size_of::<K>() + std::mem::size_of::<usize>() + 1);
        matrix + ids + map + self.id_heap_bytes
    }

    /// The rows scoring at least `threshold` against `query`, best first (ties by id), at most `limit`.
    /// Exact: every row is scored.
    pub fn search(
        &self,
        query: &Template,
        threshold: f32,
        limit: usize,
    ) -> Result<Vec<Hit<K>>, GalleryError> {
        let mut out = self.search_batch(std::slice::from_ref(query), threshold, limit)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// `search`, also saying how much work the compact scan saved.
    pub fn search_counted(
        &self,
        query: &Template,
        threshold: f32,
        limit: usize,
    ) -> Result<(Vec<Hit<K>>, SearchStats), GalleryError> {
        let mut stats = SearchStats::default();
        let mut out =
            self.search_batch_inner(std::slice::from_ref(query), threshold, limit, &mut stats)?;
        Ok((out.pop().unwrap_or_default(), stats))
    }

    /// `search` for several queries, one answer per query in order. Each group of up to [`MAX_BATCH`]
    /// queries is served by one pass over the matrix. Every query is checked before any scan.
    pub fn search_batch(
        &self,
        queries: &[Template],
        threshold: f32,
        limit: usize,
    ) -> Result<Vec<Vec<Hit<K>>>, GalleryError> {
        self.search_batch_inner(queries, threshold, limit, &mut SearchStats::default())
    }

    fn search_batch_inner(
        &self,
        queries: &[Template],
        threshold: f32,
        limit: usize,
        stats: &mut SearchStats,
    ) -> Result<Vec<Vec<Hit<K>>>, GalleryError> {
        if threshold.is_nan() {
            return Err(GalleryError::InvalidThreshold);
        }
        let prepared = queries
            .iter()
            .map(|q| {
                let unit = self.checked_unit(q)?;
                let code = quant::code_query(&unit);
                Ok(Query { unit, code })
            })
            .collect::<Result<Vec<_>, GalleryError>>()?;
        let mut answers = Vec::with_capacity(queries.len());
        for group in prepared.chunks(MAX_BATCH) {
            let mut tops: Vec<TopK<'_, K>> = group
                .iter()
                .map(|_| TopK::new(&self.ids, threshold, limit))
                .collect();
            if limit > 0 {
                self.scan(group, &mut tops, stats);
            }
            answers.extend(tops.into_iter().map(TopK::finish));
        }
        Ok(answers)
    }

    /// One pass over the compact copy for a group of queries, a block of rows at a time so each block
    /// is read from memory once and scored against every query from cache. A row is re-ranked in exact
    /// `f32` when its upper bound reaches the query's cut; it enters the top-k exactly when its exact
    /// score does, as in a plain `f32` scan. The cut only rises, and a row scoring at or above the final
    /// cut scored at or above every earlier one, so no row of the exact answer is skipped.
    fn scan(&self, queries: &[Query], tops: &mut [TopK<'_, K>], stats: &mut SearchStats) {
        let mut upper = [0.0f32; BLOCK_ROWS];
        for (b, block) in self.codes.chunks(BLOCK_ROWS).enumerate() {
            let first = b * BLOCK_ROWS;
            let end = first + block.len();
            let upper = &mut upper[..block.len()];
            for (q, top) in queries.iter().zip(tops.iter_mut()) {
                quant::block_upper(
                    block,
                    &self.scales[first..end],
                    &self.errs[first..end],
                    &q.code,
                    upper,
                );
                for (j, &u) in upper.iter().enumerate() {
                    if u >= top.cut {
                        let row = first + j;
                        stats.reranked += 1;
                        let score = dot(&self.rows[row], &q.unit);
                        if score >= top.cut {
                            top.push(score, row);
                        }
                    }
                }
            }
            stats.scanned += block.len() * queries.len();
        }
    }

    /// The plain `f32` scan of every row, the reference the compact scan must equal (tests only).
    #[cfg(test)]
    fn search_f32_reference(&self, query: &Template, threshold: f32, limit: usize) -> Vec<Hit<K>> {
        let unit = self.checked_unit(query).expect("valid query");
        let mut top = TopK::new(&self.ids, threshold, limit);
        if limit > 0 {
            for (row, r) in self.rows.iter().enumerate() {
                let score = dot(r, &unit);
                if score >= top.cut {
                    top.push(score, row);
                }
            }
        }
        top.finish()
    }

    /// Every row's compact copy is the coding of its `f32` row, and the lists line up (tests only).
    #[cfg(test)]
    fn assert_consistent(&self) {
        let n = self.rows.len();
        assert!(
            self.codes.len() == n
                && self.scales.len() == n
                && self.errs.len() == n
                && self.ids.len() == n
                && self.index.len() == n
        );
        for (i, row) in self.rows.iter().enumerate() {
            let c = quant::code_row(row);
            assert_eq!(self.codes[i], c.code, "row {i}");
            assert_eq!(self.scales[i].to_bits(), c.scale.to_bits(), "row {i}");
            assert_eq!(self.errs[i].to_bits(), c.err.to_bits(), "row {i}");
            assert_eq!(self.index[&self.ids[i]], i);
        }
    }

    /// The template's vector as a unit row, after the model, dimension and value checks.
    fn checked_unit(&self, t: &Template) -> Result<[f32; DIM], GalleryError> {
        if !self.model.matches(t) {
            return Err(ModelMismatch {
                a: self.model.label(),
                b: ModelTag::of(t).label(),
            }
            .into());
        }
        unit_row(&t.vector)
    }
}

/// Checks and normalises one vector. The norm is taken in f64, so no finite f32 input overflows or
/// underflows into a false zero or infinity.
fn unit_row(v: &[f32]) -> Result<[f32; DIM], GalleryError> {
    let v: &[f32; DIM] = v
        .try_into()
        .map_err(|_| GalleryError::WrongDimension { got: v.len() })?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(GalleryError::NotFinite);
    }
    let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Err(GalleryError::ZeroVector);
    }
    Ok(v.map(|x| (f64::from(x) / norm) as f32))
}

/// A checked query: its unit vector (for the exact re-rank) and its compact form (for the scan).
struct Query {
    unit: [f32; DIM],
    code: QueryCode,
}

/// How much work a search did: rows scored on the compact copy (× queries), and rows re-ranked in
/// exact `f32` because their bound reached the cut-off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub scanned: usize,
    pub reranked: usize,
}

/// The exact kernel: a dot product over fixed-size rows with eight independent accumulators, which LLVM
/// turns into packed multiplies and adds (SSE2 on the baseline x86-64 target) with no bounds checks.
#[inline(always)]
fn dot(a: &[f32; DIM], b: &[f32; DIM]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    // Fixed pairwise order: the same row and query always give the same score.
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// The best `limit` candidates of one query. Candidates collect in a buffer; when it holds twice the
/// limit it is cut back to the best `limit` and the cut score rises, so most rows fail one comparison.
struct TopK<'a, K> {
    ids: &'a [K],
    limit: usize,
    /// Rows scoring below this cannot enter. Equal scores can (a smaller id wins a tie).
    cut: f32,
    buf: Vec<(f32, usize)>,
}

impl<'a, K: Ord + Clone> TopK<'a, K> {
    fn new(ids: &'a [K], threshold: f32, limit: usize) -> Self {
        TopK {
            ids,
            limit,
            cut: threshold,
            buf: Vec::new(),
        }
    }

    /// Best first: higher score, then smaller id.
    fn order(ids: &[K], a: &(f32, usize), b: &(f32, usize)) -> Ordering {
        b.0.total_cmp(&a.0).then_with(|| ids[a.1].cmp(&ids[b.1]))
    }

    fn push(&mut self, score: f32, row: usize) {
        self.buf.push((score, row));
        if self.buf.len() >= self.limit.saturating_mul(2).max(1024) {
            self.shrink();
        }
    }

    fn shrink(&mut self) {
        if self.limit > 0 && self.buf.len() > self.limit {
            let ids = self.ids;
            self.buf
                .select_nth_unstable_by(self.limit - 1, |a, b| Self::order(ids, a, b));
            self.buf.truncate(self.limit);
            self.cut = self.buf[self.limit - 1].0;
        }
    }

    fn finish(mut self) -> Vec<Hit<K>> {
        let ids = self.ids;
        self.buf.sort_unstable_by(|a, b| Self::order(ids, a, b));
        self.buf.truncate(self.limit);
        self.buf
            .into_iter()
            .enumerate()
            .map(|(i, (score, row))| Hit {
                id: ids[row].clone(),
                score,
                rank: i + 1,
            })
            .collect()
    }
}

/// One gallery per tenant, all of one model. Searches share a read lock; an upsert or removal takes
/// the write lock for its O(1) change (it waits for a running scan, about 13 ms at a million rows).
pub struct GalleryRegistry<K: GalleryId = String> {
    model: ModelTag,
    galleries: RwLock<HashMap<String, Gallery<K>>>,
}

impl<K: GalleryId> GalleryRegistry<K> {
    pub fn new(model: ModelTag) -> Self {
        GalleryRegistry {
            model,
            galleries: RwLock::new(HashMap::new()),
        }
    }

    /// Adds or replaces `id` in `tenant`'s gallery (created on first use). `true` when it replaced one.
    pub fn upsert(&self, tenant: &str, id: K, template: &Template) -> Result<bool, GalleryError> {
        let mut map = self.galleries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = map.get_mut(tenant) {
            return g.insert(id, template);
        }
        let mut g = Gallery::new(self.model.clone());
        let replaced = g.insert(id, template)?;
        map.insert(tenant.to_owned(), g);
        Ok(replaced)
    }

    pub fn remove(&self, tenant: &str, id: &K) -> bool {
        let mut map = self.galleries.write().unwrap_or_else(|e| e.into_inner());
        map.get_mut(tenant).is_some_and(|g| g.remove(id))
    }

    /// Searches `tenant`'s gallery only; a tenant with no gallery has no hits (the query is still checked).
    pub fn search(
        &self,
        tenant: &str,
        query: &Template,
        threshold: f32,
        limit: usize,
    ) -> Result<Vec<Hit<K>>, GalleryError> {
        let map = self.galleries.read().unwrap_or_else(|e| e.into_inner());
        match map.get(tenant) {
            Some(g) => g.search(query, threshold, limit),
            None => Gallery::<K>::new(self.model.clone()).search(query, threshold, limit),
        }
    }

    pub fn len(&self, tenant: &str) -> usize {
        let map = self.galleries.read().unwrap_or_else(|e| e.into_inner());
        map.get(tenant).map_or(0, Gallery::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn tag() -> ModelTag {
        ModelTag {
            model_id: "sface-2021dec".into(),
            model_hash: "ab".repeat(32),
            preprocessing_version: 1,
        }
    }

    fn tpl(v: Vec<f32>) -> Template {
        let m = tag();
        Template {
            model_id: m.model_id,
            model_hash: m.model_hash,
            preprocessing_version: m.preprocessing_version,
            vector: v,
        }
    }

    fn random_unit(rng: &mut StdRng) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        crate::face::template::l2_normalise(&mut v);
        v
    }

    fn noisy(rng: &mut StdRng, v: &[f32], amount: f32) -> Vec<f32> {
        let mut w: Vec<f32> = v
            .iter()
            .map(|x| x + rng.gen_range(-amount..amount))
            .collect();
        crate::face::template::l2_normalise(&mut w);
        w
    }

    /// The reference: cosine in f64 with a plain loop.
    fn cosine64(a: &[f32], b: &[f32]) -> f64 {
        let d: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        d / (na * nb)
    }

    fn gallery_of(rng: &mut StdRng, n: usize) -> (Gallery<String>, Vec<(String, Vec<f32>)>) {
        let mut g = Gallery::new(tag());
        let mut rows = Vec::new();
        for i in 0..n {
            let v = random_unit(rng);
            let id = format!("enr-{i:06}");
            assert!(!g.insert(id.clone(), &tpl(v.clone())).unwrap());
            rows.push((id, v));
        }
        (g, rows)
    }

    #[test]
    fn exact_top_k_matches_brute_force() {
        let mut rng = StdRng::seed_from_u64(21);
        let (g, rows) = gallery_of(&mut rng, 3000);
        for limit in [1, 10, 100, 1500] {
            for _ in 0..5 {
                let q = random_unit(&mut rng);
                let hits = g.search(&tpl(q.clone()), -1.0, limit).unwrap();
                assert_eq!(hits.len(), limit);
                let mut reference: Vec<(f64, &str)> = rows
                    .iter()
                    .map(|(id, v)| (cosine64(&q, v), id.as_str()))
                    .collect();
                reference.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
                for (i, h) in hits.iter().enumerate() {
                    assert_eq!(h.rank, i + 1);
                    // Summation order differs from the reference by float rounding only.
                    let (rs, rid) = reference[i];
                    assert!((f64::from(h.score) - rs).abs() < 1e-5, "rank {}", i + 1);
                    // Away from near ties the order must be the reference's exactly.
                    let clear_above = i == 0 || reference[i - 1].0 > rs + 1e-5;
                    let clear_below = reference[i + 1].0 < rs - 1e-5;
                    if clear_above && clear_below {
                        assert_eq!(h.id, rid, "rank {}", i + 1);
                    }
                }
                // Nothing better was left out.
                let worst = hits.last().unwrap().score;
                assert!(reference[limit].0 <= f64::from(worst) + 1e-5);
                for w in hits.windows(2) {
                    assert!(w[0].score >= w[1].score);
                }
            }
        }
    }

    #[test]
    fn planted_near_duplicates_are_all_found_at_rank_1() {
        let mut rng = StdRng::seed_from_u64(2021);
        let (mut g, _) = gallery_of(&mut rng, 20_000);
        let probes: Vec<Vec<f32>> = (0..50).map(|_| random_unit(&mut rng)).collect();
        for (i, p) in probes.iter().enumerate() {
            g.insert(format!("planted-{i:02}"), &tpl(noisy(&mut rng, p, 0.02)))
                .unwrap();
        }
        let queries: Vec<Template> = probes.iter().map(|p| tpl(p.clone())).collect();
        let batch = g.search_batch(&queries, 0.5, 3).unwrap();
        for (i, q) in queries.iter().enumerate() {
            let want = format!("planted-{i:02}");
            let single = g.search(q, 0.5, 3).unwrap();
            assert_eq!(single[0].id, want, "single query {i}");
            assert_eq!(single[0].rank, 1);
            assert!(single[0].score > 0.9, "score {}", single[0].score);
            // Random 128-d vectors are nearly orthogonal: nothing else clears 0.5.
            assert_eq!(single.len(), 1);
            assert_eq!(batch[i], single, "batched query {i}");
        }
    }

    #[test]
    fn batch_search_equals_single_searches_across_groups() {
        let mut rng = StdRng::seed_from_u64(7);
        let (g, _) = gallery_of(&mut rng, 1000);
        // 150 queries: three groups of at most MAX_BATCH, the last one partial.
        let queries: Vec<Template> = (0..150).map(|_| tpl(random_unit(&mut rng))).collect();
        let batch = g.search_batch(&queries, 0.0, 5).unwrap();
        assert_eq!(batch.len(), 150);
        for (q, b) in queries.iter().zip(&batch) {
            assert_eq!(&g.search(q, 0.0, 5).unwrap(), b);
        }
        assert!(g.search_batch(&[], 0.0, 5).unwrap().is_empty());
    }

    #[test]
    fn remove_swaps_the_last_row_in_and_keeps_ids_right() {
        let mut rng = StdRng::seed_from_u64(3);
        let (mut g, rows) = gallery_of(&mut rng, 200);
        let removed: Vec<&String> = rows.iter().step_by(3).map(|(id, _)| id).collect();
        for id in &removed {
            assert!(g.remove(id));
            assert!(!g.remove(id), "second removal of {id}");
        }
        assert!(!g.remove(&"never-there".to_string()));
        assert_eq!(g.len(), 200 - removed.len());
        for (i, (id, v)) in rows.iter().enumerate() {
            let hits = g.search(&tpl(v.clone()), 0.99, 10).unwrap();
            if i % 3 == 0 {
                assert!(!g.contains(id));
                assert!(hits.iter().all(|h| &h.id != id), "removed {id} returned");
            } else {
                // Every kept id still points at its own row.
                assert_eq!(hits.len(), 1);
                assert_eq!(&hits[0].id, id);
                assert!((hits[0].score - 1.0).abs() < 1e-5);
            }
        }
        // Emptying and refilling works.
        for (id, _) in &rows {
            g.remove(id);
        }
        assert!(g.is_empty());
        assert!(g
            .search(&tpl(rows[0].1.clone()), -1.0, 10)
            .unwrap()
            .is_empty());
        g.insert("again".into(), &tpl(rows[0].1.clone())).unwrap();
        assert_eq!(
            g.search(&tpl(rows[0].1.clone()), -1.0, 10).unwrap()[0].id,
            "again"
        );
    }

    #[test]
    fn insert_of_a_known_id_replaces_its_row() {
        let mut rng = StdRng::seed_from_u64(4);
        let (mut g, rows) = gallery_of(&mut rng, 50);
        let fresh = random_unit(&mut rng);
        assert!(g.insert(rows[10].0.clone(), &tpl(fresh.clone())).unwrap());
        assert_eq!(g.len(), 50);
        let hits = g.search(&tpl(fresh), 0.99, 5).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, rows[10].0);
        assert!(g
            .search(&tpl(rows[10].1.clone()), 0.99, 5)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_template_of_another_model_is_refused() {
        let mut g: Gallery = Gallery::new(tag());
        let v = vec![1.0; DIM];
        let mut other_id = tpl(v.clone());
        other_id.model_id = "arcface".into();
        let mut other_hash = tpl(v.clone());
        other_hash.model_hash = "cd".repeat(32);
        let mut other_prep = tpl(v.clone());
        other_prep.preprocessing_version = 2;
        for t in [&other_id, &other_hash, &other_prep] {
            assert!(matches!(
                g.insert("x".into(), t),
                Err(GalleryError::ModelMismatch(_))
            ));
            assert!(matches!(
                g.search(t, 0.0, 1),
                Err(GalleryError::ModelMismatch(_))
            ));
        }
        assert!(g.is_empty());
        g.insert("x".into(), &tpl(v.clone())).unwrap();
        // One bad query refuses the whole batch before any scan.
        assert!(matches!(
            g.search_batch(&[tpl(v), other_hash], 0.0, 1),
            Err(GalleryError::ModelMismatch(_))
        ));
    }

    #[test]
    fn threshold_and_limit_are_respected() {
        let mut rng = StdRng::seed_from_u64(5);
        let (g, rows) = gallery_of(&mut rng, 2000);
        let q = random_unit(&mut rng);
        let above: Vec<&String> = rows
            .iter()
            .filter(|(_, v)| cosine64(&q, v) >= 0.1 + 1e-5)
            .map(|(id, _)| id)
            .collect();
        assert!(above.len() > 20, "the data should give some hits");
        let all = g.search(&tpl(q.clone()), 0.1, usize::MAX).unwrap();
        assert!(all.iter().all(|h| h.score >= 0.1));
        for id in above {
            assert!(all.iter().any(|h| &h.id == id), "{id} missing");
        }
        let few = g.search(&tpl(q.clone()), 0.1, 7).unwrap();
        assert_eq!(few.as_slice(), &all[..7]);
        assert!(g.search(&tpl(q.clone()), 0.1, 0).unwrap().is_empty());
        assert!(g.search(&tpl(q.clone()), 1.5, 10).unwrap().is_empty());
        assert_eq!(
            g.search(&tpl(q.clone()), f32::NEG_INFINITY, 5000)
                .unwrap()
                .len(),
            2000
        );
        assert_eq!(
            g.search(&tpl(q), f32::NAN, 5),
            Err(GalleryError::InvalidThreshold)
        );
    }

    #[test]
    fn ties_are_ordered_by_id() {
        let mut g: Gallery = Gallery::new(tag());
        let v = vec![0.5; DIM];
        for id in ["c", "a", "b", "d"] {
            g.insert(id.into(), &tpl(v.clone())).unwrap();
        }
        let hits = g.search(&tpl(v), 0.0, 3).unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn nan_zero_and_wrong_length_vectors_are_refused() {
        let mut g: Gallery = Gallery::new(tag());
        g.insert("ok".into(), &tpl(vec![1.0; DIM])).unwrap();
        let mut nan = vec![0.1; DIM];
        nan[17] = f32::NAN;
        let mut inf = vec![0.1; DIM];
        inf[3] = f32::INFINITY;
        let cases = [
            (tpl(nan), GalleryError::NotFinite),
            (tpl(inf), GalleryError::NotFinite),
            (tpl(vec![0.0; DIM]), GalleryError::ZeroVector),
            (
                tpl(vec![1.0; 127]),
                GalleryError::WrongDimension { got: 127 },
            ),
            (tpl(vec![]), GalleryError::WrongDimension { got: 0 }),
        ];
        for (t, want) in cases {
            assert_eq!(g.search(&t, 0.0, 5), Err(want.clone()));
            assert_eq!(g.insert("bad".into(), &t), Err(want));
        }
        assert_eq!(g.len(), 1);
        // Extreme but finite values normalise without overflow or underflow.
        let big = tpl(vec![f32::MAX; DIM]);
        let tiny = tpl(vec![f32::from_bits(1); DIM]);
        for t in [big, tiny] {
            let hits = g.search(&t, 0.0, 1).unwrap();
            assert!((hits[0].score - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn memory_counts_the_matrix_and_the_ids() {
        let mut g: Gallery<u64> = Gallery::with_capacity(tag(), 1000);
        for i in 0..1000u64 {
            g.insert(i, &tpl(vec![1.0; DIM])).unwrap();
        }
        let matrix = 1000 * DIM * 4;
        assert!(g.memory_bytes() >= matrix + 1000 * 8);
        assert!(g.memory_bytes() < matrix * 2);
        let mut s: Gallery<String> = Gallery::new(tag());
        s.insert("0123456789".into(), &tpl(vec![1.0; DIM])).unwrap();
        let before = s.memory_bytes();
        s.remove(&"0123456789".to_string());
        // The id's own bytes, held twice, are released.
        assert_eq!(before - s.memory_bytes(), 20);
    }

    #[test]
    fn registry_keeps_tenants_apart() {
        let r: GalleryRegistry = GalleryRegistry::new(tag());
        let mut rng = StdRng::seed_from_u64(6);
        let v = random_unit(&mut rng);
        assert!(!r.upsert("t1", "e1".into(), &tpl(v.clone())).unwrap());
        assert!(r.upsert("t1", "e1".into(), &tpl(v.clone())).unwrap());
        r.upsert("t2", "e2".into(), &tpl(random_unit(&mut rng)))
            .unwrap();
        assert_eq!(r.search("t1", &tpl(v.clone()), 0.9, 5).unwrap()[0].id, "e1");
        assert!(r.search("t2", &tpl(v.clone()), 0.9, 5).unwrap().is_empty());
        assert!(r.search("t3", &tpl(v.clone()), 0.9, 5).unwrap().is_empty());
        assert!(r.search("t3", &tpl(vec![0.0; DIM]), 0.9, 5).is_err());
        let mut other = tpl(v.clone());
        other.model_id = "other".into();
        assert!(r.upsert("t4", "e".into(), &other).is_err());
        assert_eq!(r.len("t4"), 0);
        assert!(r.remove("t1", &"e1".to_string()));
        assert!(!r.remove("t1", &"e1".to_string()));
        assert!(!r.remove("t9", &"e1".to_string()));
        assert!(r.search("t1", &tpl(v), 0.9, 5).unwrap().is_empty());
    }

    /// A unit vector at cosine `c` from `q` (unit), in a random direction orthogonal to it.
    fn at_cosine(rng: &mut StdRng, q: &[f32], c: f64) -> Vec<f32> {
        let r = random_unit(rng);
        let along: f64 = r.iter().zip(q).map(|(a, b)| f64::from(a * b)).sum();
        let mut o: Vec<f64> = r
            .iter()
            .zip(q)
            .map(|(a, b)| f64::from(*a) - along * f64::from(*b))
            .collect();
        let n = o.iter().map(|x| x * x).sum::<f64>().sqrt();
        o.iter_mut().for_each(|x| *x /= n);
        let s = (1.0 - c * c).sqrt();
        q.iter()
            .zip(&o)
            .map(|(a, b)| (c * f64::from(*a) + s * b) as f32)
            .collect()
    }

    /// Every way of asking: the compact scan's answer equals the plain f32 scan's, scores included.
    fn assert_equals_reference(g: &Gallery<String>, q: &[f32], thresholds: &[f32]) {
        let t = tpl(q.to_vec());
        for &threshold in thresholds {
            for limit in [0, 1, 5, 100, usize::MAX] {
                let got = g.search(&t, threshold, limit).unwrap();
                let want = g.search_f32_reference(&t, threshold, limit);
                assert_eq!(got, want, "threshold {threshold}, limit {limit}");
            }
        }
    }

    #[test]
    fn compact_scan_equals_the_f32_scan_on_random_galleries() {
        let mut rng = StdRng::seed_from_u64(8);
        let (g, rows) = gallery_of(&mut rng, 5000);
        for i in 0..12 {
            // Unrelated queries and queries equal or close to a stored row.
            let q = match i % 3 {
                0 => random_unit(&mut rng),
                1 => rows[i * 7].1.clone(),
                _ => noisy(&mut rng, &rows[i * 11].1, 0.05),
            };
            assert_equals_reference(&g, &q, &[f32::NEG_INFINITY, -1.0, 0.0, 0.1, 0.2, 0.4, 0.99]);
        }
        g.assert_consistent();
    }

    #[test]
    fn compact_scan_equals_the_f32_scan_at_near_ties_around_the_cut() {
        let mut rng = StdRng::seed_from_u64(9);
        let q = random_unit(&mut rng);
        let mut g: Gallery = Gallery::new(tag());
        // 3000 rows whose exact scores lie within ±0.01 of 0.45 (inside the compact error of most
        // rows), many a few units in the last place apart, plus exact duplicates under other ids.
        for i in 0..3000 {
            let c = 0.45 + (i as f64 - 1500.0) * 1e-5 / 1.5 * if i % 2 == 0 { 1.0 } else { 1e-3 };
            g.insert(format!("near-{i:05}"), &tpl(at_cosine(&mut rng, &q, c)))
                .unwrap();
        }
        let dup = at_cosine(&mut rng, &q, 0.45);
        for i in 0..20 {
            g.insert(format!("dup-{i:02}"), &tpl(dup.clone())).unwrap();
        }
        // Filler far below.
        for i in 0..2000 {
            g.insert(format!("far-{i:05}"), &tpl(at_cosine(&mut rng, &q, 0.1)))
                .unwrap();
        }
        let dup_score = g.search(&tpl(dup.clone()), -1.0, 1).unwrap()[0].score;
        assert!(dup_score > 0.999);
        let s = g.search(&tpl(q.clone()), 0.0, 1).unwrap()[0].score;
        let mut cuts = vec![0.44, 0.449, 0.45, 0.4501, 0.46, s];
        // Cut-offs exactly at stored scores, and one ulp either side.
        for h in g.search(&tpl(q.clone()), 0.449, 15).unwrap() {
            cuts.extend([
                h.score,
                f32::from_bits(h.score.to_bits() + 1),
                f32::from_bits(h.score.to_bits() - 1),
            ]);
        }
        assert_equals_reference(&g, &q, &cuts);
        // k-th best cut-offs among near ties: every limit, threshold below all of them.
        for limit in [1, 3, 17, 20, 21, 999, 1500, 3020] {
            let t = tpl(q.clone());
            assert_eq!(
                g.search(&t, 0.3, limit).unwrap(),
                g.search_f32_reference(&t, 0.3, limit)
            );
        }
    }

    #[test]
    fn compact_scan_equals_the_f32_scan_on_skewed_rows() {
        // Rows with one dominant component have the largest coding error: the bound widens for them
        // and the answer stays exact.
        let mut rng = StdRng::seed_from_u64(10);
        let mut g: Gallery = Gallery::new(tag());
        for i in 0..2000 {
            let mut v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-2e-3f32..2e-3)).collect();
            v[i % DIM] = 1.0;
            v[(i * 7 + 3) % DIM] = rng.gen_range(-0.5..0.5);
            g.insert(format!("spike-{i:05}"), &tpl(v)).unwrap();
        }
        for i in 0..10 {
            let mut q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-2e-3f32..2e-3)).collect();
            q[i] = 1.0;
            assert_equals_reference(&g, &q, &[-1.0, 0.5, 0.9, 0.99]);
            assert_equals_reference(&g, &random_unit(&mut rng), &[-1.0, 0.0, 0.1]);
        }
        g.assert_consistent();
    }

    #[test]
    fn planted_rows_just_above_the_threshold_are_all_found() {
        // 300 rows planted at cosines from 0.4495 to 0.4525 against the query (inside the compact
        // copy's error of the 0.449 cut) among 20,000 random rows: every one comes back.
        let mut rng = StdRng::seed_from_u64(13);
        let (mut g, _) = gallery_of(&mut rng, 20_000);
        let q = random_unit(&mut rng);
        for i in 0..300 {
            let c = 0.4495 + f64::from(i) * 1e-5;
            g.insert(format!("planted-{i:03}"), &tpl(at_cosine(&mut rng, &q, c)))
                .unwrap();
        }
        let hits = g.search(&tpl(q.clone()), 0.449, usize::MAX).unwrap();
        let found = hits.iter().filter(|h| h.id.starts_with("planted-")).count();
        assert_eq!(found, 300);
        assert_eq!(hits, g.search_f32_reference(&tpl(q), 0.449, usize::MAX));
    }

    #[test]
    fn the_compact_scan_re_ranks_few_rows() {
        // The point of the compact copy: at an ordinary threshold almost no row needs the f32 re-rank.
        // (It is exact either way; this checks that the bound is tight enough to save the work.)
        let mut rng = StdRng::seed_from_u64(11);
        let (g, rows) = gallery_of(&mut rng, 20_000);
        let (hits, stats) = g
            .search_counted(&tpl(rows[123].1.clone()), 0.4, 10)
            .unwrap();
        assert_eq!(hits[0].id, rows[123].0);
        assert_eq!(stats.scanned, 20_000);
        assert!(stats.reranked >= 1 && stats.reranked < 20, "{stats:?}");
        // Top-k without a threshold: the cut rises to the k-th best, and re-ranks stay a small share.
        let (_, stats) = g
            .search_counted(&tpl(random_unit(&mut rng)), f32::NEG_INFINITY, 10)
            .unwrap();
        assert!(stats.reranked < 4000, "{stats:?}");
    }

    #[test]
    fn upserts_and_removals_keep_both_copies_consistent() {
        let mut rng = StdRng::seed_from_u64(12);
        let (mut g, mut rows) = gallery_of(&mut rng, 500);
        for step in 0..2000 {
            let i = rng.gen_range(0..rows.len());
            match step % 3 {
                0 => {
                    let v = random_unit(&mut rng);
                    assert!(g.insert(rows[i].0.clone(), &tpl(v.clone())).unwrap());
                    rows[i].1 = v;
                }
                1 => {
                    assert!(g.remove(&rows[i].0));
                    rows.swap_remove(i);
                }
                _ => {
                    let id = format!("new-{step:05}");
                    let v = random_unit(&mut rng);
                    assert!(!g.insert(id.clone(), &tpl(v.clone())).unwrap());
                    rows.push((id, v));
                }
            }
        }
        g.assert_consistent();
        assert_eq!(g.len(), rows.len());
        for (id, v) in rows.iter().step_by(17) {
            let hits = g.search(&tpl(v.clone()), 0.99, 2).unwrap();
            assert_eq!(&hits[0].id, id);
            assert_equals_reference(&g, v, &[0.0, 0.3]);
        }
    }

    #[test]
    fn debug_hides_the_vectors() {
        let mut g: Gallery = Gallery::new(tag());
        g.insert("x".into(), &tpl(vec![0.123456; DIM])).unwrap();
        let s = format!("{g:?}");
        assert!(s.contains("[redacted]") && !s.contains("0.088"));
    }
}
