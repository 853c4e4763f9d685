//! The replica's in-memory 1:N state (issue 21): per tenant, an exact gallery of its live
//! enrollments' selfie templates (with, beside each row, the enrollment's status and a keyed hash of
//! its identity for the duplicate check) and an exact gallery of its watchlist entries.
//!
//! Nothing here is ever written anywhere: the identity hash is keyed by a random key made when the
//! process starts, so it means nothing outside this process (and is no new data at rest). The
//! vectors are the unsealed templates, as `face::gallery` holds them.

use crate::card::Identity;
use crate::domain::{EnrollmentStatus, TenantId};
use crate::face::gallery::{Gallery, GalleryError, Hit, ModelTag};
use crate::face::Template;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;

/// A keyed hash of a normalised name and birth date: equal for the same person on two cards (a
/// re-enrollment), different for another identity. Comparable within one process only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityTag([u8; 32]);

impl std::fmt::Debug for IdentityTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityTag([redacted])")
    }
}

/// What the duplicate check needs to know of a gallery row besides its vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceMeta {
    pub status: EnrollmentStatus,
    pub identity: IdentityTag,
}

/// One tenant's galleries.
struct TenantFaces {
    faces: Gallery<String>,
    meta: HashMap<String, FaceMeta>,
    watch: Gallery<String>,
}

impl TenantFaces {
    fn new(model: &ModelTag) -> Self {
        Self {
            faces: Gallery::new(model.clone()),
            meta: HashMap::new(),
            watch: Gallery::new(model.clone()),
        }
    }
}

/// Every tenant's galleries, as one value (a build makes a new one and swaps it in).
pub struct Galleries {
    model: ModelTag,
    tenants: HashMap<TenantId, TenantFaces>,
}

impl Galleries {
    pub fn new(model: ModelTag) -> Self {
        Self {
            model,
            tenants: HashMap::new(),
        }
    }

    fn tenant(&mut self, tenant: &TenantId) -> &mut TenantFaces {
        let model = &self.model;
        self.tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantFaces::new(model))
    }

    /// Adds or replaces an enrollment's row (a template of another model is refused).
    pub fn upsert_face(
        &mut self,
        tenant: &TenantId,
        id: &str,
        template: &Template,
        meta: FaceMeta,
    ) -> Result<(), GalleryError> {
        let t = self.tenant(tenant);
        t.faces.insert(id.to_string(), template)?;
        t.meta.insert(id.to_string(), meta);
        Ok(())
    }

    pub fn remove_face(&mut self, tenant: &TenantId, id: &str) -> bool {
        self.tenants.get_mut(tenant).is_some_and(|t| {
            t.meta.remove(id);
            t.faces.remove(&id.to_string())
        })
    }

    pub fn upsert_watch(
        &mut self,
        tenant: &TenantId,
        id: &str,
        template: &Template,
    ) -> Result<(), GalleryError> {
        self.tenant(tenant)
            .watch
            .insert(id.to_string(), template)
            .map(|_| ())
    }

    pub fn remove_watch(&mut self, tenant: &TenantId, id: &str) -> bool {
        self.tenants
            .get_mut(tenant)
            .is_some_and(|t| t.watch.remove(&id.to_string()))
    }

    /// Rows of enrollments in every tenant's gallery.
    pub fn total_faces(&self) -> usize {
        self.tenants.values().map(|t| t.faces.len()).sum()
    }

    pub fn total_watch(&self) -> usize {
        self.tenants.values().map(|t| t.watch.len()).sum()
    }

    /// Bytes held by the galleries (matrix, ids, maps) and the rows' metadata (an estimate).
    pub fn memory_bytes(&self) -> usize {
        self.tenants
            .values()
            .map(|t| {
                t.faces.memory_bytes()
                    + t.watch.memory_bytes()
                    + t.meta.capacity()
                        * (std::mem::size_of::<String>() + std::mem::size_of::<FaceMeta>() + 1)
                    + t.meta.keys().map(String::capacity).sum::<usize>()
            })
            .sum()
    }
}

/// A search answer: the hits, best first, and the gallery size the threshold was set for.
#[derive(Debug, Clone)]
pub struct Found<T> {
    pub hits: Vec<T>,
    pub gallery_size: usize,
    pub threshold: f32,
}

/// The replica's galleries behind one lock, with the feed position they reflect and whether the
/// start-up build has finished (readiness waits for it).
pub struct FaceIndex {
    key: [u8; 32],
    model: ModelTag,
    galleries: RwLock<Galleries>,
    applied_seq: AtomicI64,
    ready: AtomicBool,
}

impl std::fmt::Debug for FaceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceIndex")
            .field("model", &self.model)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl FaceIndex {
    pub fn new(model: ModelTag) -> Self {
        Self {
            key: rand::random(),
            galleries: RwLock::new(Galleries::new(model.clone())),
            model,
            applied_seq: AtomicI64::new(0),
            ready: AtomicBool::new(false),
        }
    }

    pub fn model(&self) -> &ModelTag {
        &self.model
    }

    /// The identity's tag under this process's key: the name without any white space (the card's
    /// U+3000 between family and given name included) and the birth date.
    pub fn identity_tag(&self, identity: &Identity) -> IdentityTag {
        let name: String = identity
            .name
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(identity.birth_date.to_string().as_bytes());
        IdentityTag(mac.finalize().into_bytes().into())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::Acquire)
    }

    pub(super) fn set_applied_seq(&self, seq: i64) {
        self.applied_seq.fetch_max(seq, Ordering::AcqRel);
    }

    /// Swaps in a freshly built state reflecting the feed up to `seq`, and is ready from then on.
    pub(super) fn replace(&self, built: Galleries, seq: i64) {
        *self.write() = built;
        self.applied_seq.store(seq, Ordering::Release);
        self.ready.store(true, Ordering::Release);
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, Galleries> {
        self.galleries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Galleries> {
        self.galleries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant's enrollments scoring at least the threshold `threshold_for(gallery size)`.
    pub fn search_faces(
        &self,
        tenant: &TenantId,
        probe: &Template,
        threshold_for: impl Fn(usize) -> f32,
        limit: usize,
    ) -> Result<Found<(Hit<String>, FaceMeta)>, GalleryError> {
        let g = self.read();
        let Some(t) = g.tenants.get(tenant) else {
            let threshold = threshold_for(0);
            Gallery::<String>::new(self.model.clone()).search(probe, threshold, 0)?;
            return Ok(Found {
                hits: Vec::new(),
                gallery_size: 0,
                threshold,
            });
        };
        let threshold = threshold_for(t.faces.len());
        let hits = t.faces.search(probe, threshold, limit)?;
        Ok(Found {
            hits: hits
                .into_iter()
                .filter_map(|h| t.meta.get(&h.id).map(|m| (h, *m)))
                .collect(),
            gallery_size: t.faces.len(),
            threshold,
        })
    }

    /// The tenant's watchlist entries scoring at least `threshold_for(watchlist size)`.
    pub fn search_watch(
        &self,
        tenant: &TenantId,
        probe: &Template,
        threshold_for: impl Fn(usize) -> f32,
        limit: usize,
    ) -> Result<Found<Hit<String>>, GalleryError> {
        let g = self.read();
        let size = g.tenants.get(tenant).map_or(0, |t| t.watch.len());
        let threshold = threshold_for(size);
        let hits = match g.tenants.get(tenant) {
            Some(t) => t.watch.search(probe, threshold, limit)?,
            None => Vec::new(),
        };
        Ok(Found {
            hits,
            gallery_size: size,
            threshold,
        })
    }

    pub fn upsert_face(
        &self,
        tenant: &TenantId,
        id: &str,
        template: &Template,
        meta: FaceMeta,
    ) -> Result<(), GalleryError> {
        self.write().upsert_face(tenant, id, template, meta)
    }

    pub fn remove_face(&self, tenant: &TenantId, id: &str) -> bool {
        self.write().remove_face(tenant, id)
    }

    pub fn upsert_watch(
        &self,
        tenant: &TenantId,
        id: &str,
        template: &Template,
    ) -> Result<(), GalleryError> {
        self.write().upsert_watch(tenant, id, template)
    }

    pub fn remove_watch(&self, tenant: &TenantId, id: &str) -> bool {
        self.write().remove_watch(tenant, id)
    }

    /// The tenant's number of enrollment rows.
    pub fn len(&self, tenant: &TenantId) -> usize {
        self.read().tenants.get(tenant).map_or(0, |t| t.faces.len())
    }

    pub fn contains(&self, tenant: &TenantId, id: &str) -> bool {
        self.read()
            .tenants
            .get(tenant)
            .is_some_and(|t| t.faces.contains(&id.to_string()))
    }

    /// (enrollment rows, watchlist rows, bytes) over every tenant.
    pub fn stats(&self) -> (usize, usize, usize) {
        let g = self.read();
        (g.total_faces(), g.total_watch(), g.memory_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> ModelTag {
        ModelTag {
            model_id: "m".into(),
            model_hash: "h".into(),
            preprocessing_version: 1,
        }
    }

    fn template(seed: u64) -> Template {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Template {
            model_id: "m".into(),
            model_hash: "h".into(),
            preprocessing_version: 1,
            vector: (0..128).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        }
    }

    fn identity(name: &str, year: i32) -> Identity {
        Identity {
            name: name.into(),
            name_alt: String::new(),
            birth_date: chrono::NaiveDate::from_ymd_opt(year, 1, 2).unwrap(),
            sex: crate::card::Sex::Male,
            address: "東京都".into(),
            address_alt: String::new(),
        }
    }

    #[test]
    fn identity_tags_ignore_spaces_and_the_address_and_differ_by_name_or_birth_date() {
        let index = FaceIndex::new(tag());
        let a = index.identity_tag(&identity("山田\u{3000}太郎", 1990));
        let mut moved = identity("山田太郎", 1990);
        moved.address = "大阪府".into();
        assert_eq!(a, index.identity_tag(&moved));
        assert_ne!(a, index.identity_tag(&identity("山田\u{3000}次郎", 1990)));
        assert_ne!(a, index.identity_tag(&identity("山田\u{3000}太郎", 1991)));
        // Another process (another key) gives another tag: nothing to correlate outside memory.
        assert_ne!(
            a,
            FaceIndex::new(tag()).identity_tag(&identity("山田太郎", 1990))
        );
    }

    #[test]
    fn searches_stay_within_the_tenant_and_removals_are_never_found_again() {
        let index = FaceIndex::new(tag());
        let (t1, t2) = (TenantId::new(), TenantId::new());
        let meta = FaceMeta {
            status: EnrollmentStatus::Verified,
            identity: index.identity_tag(&identity("a", 1990)),
        };
        for i in 0..50u64 {
            index
                .upsert_face(&t1, &format!("e{i}"), &template(i), meta)
                .unwrap();
        }
        index.upsert_face(&t2, "other", &template(7), meta).unwrap();
        let found = index.search_faces(&t1, &template(7), |_| 0.99, 10).unwrap();
        assert_eq!(found.gallery_size, 50);
        assert_eq!(found.hits.len(), 1);
        assert_eq!(found.hits[0].0.id, "e7");
        assert!(index.remove_face(&t1, "e7"));
        let found = index.search_faces(&t1, &template(7), |_| 0.99, 10).unwrap();
        assert!(found.hits.is_empty());
        assert!(!index.contains(&t1, "e7"));
        let unknown = TenantId::new();
        assert!(index
            .search_faces(&unknown, &template(7), |_| 0.0, 10)
            .unwrap()
            .hits
            .is_empty());
        index.upsert_watch(&t1, "w1", &template(3)).unwrap();
        let w = index.search_watch(&t1, &template(3), |_| 0.99, 5).unwrap();
        assert_eq!(w.hits[0].id, "w1");
        assert!(index
            .search_watch(&t2, &template(3), |_| 0.99, 5)
            .unwrap()
            .hits
            .is_empty());
        assert!(index.remove_watch(&t1, "w1"));
        assert!(index
            .search_watch(&t1, &template(3), |_| 0.99, 5)
            .unwrap()
            .hits
            .is_empty());
        let (faces, watch, bytes) = index.stats();
        assert_eq!((faces, watch), (50, 0));
        assert!(bytes >= 50 * 512);
    }
}
