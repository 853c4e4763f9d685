//! Face templates: an L2-normalised SFace embedding tagged with the model that made it, a compact
//! storage encoding, and cosine comparison that refuses templates of different models.

use std::fmt;

/// Version of everything between the image and the embedding (detection, alignment, input layout).
/// Bump it when a change would move embeddings, so stored templates are not compared across it.
pub const PREPROCESSING_VERSION: u16 = 1;

const MAGIC: &[u8; 4] = b"JFT1";

/// A biometric template. Its `Debug` hides the vector: it is personal data.
#[derive(Clone, PartialEq)]
pub struct Template {
    pub model_id: String,
    /// Full hex SHA-256 of the recognition model file.
    pub model_hash: String,
    pub preprocessing_version: u16,
    pub vector: Vec<f32>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("model_id", &self.model_id)
            .field("model_hash", &self.model_hash)
            .field("preprocessing_version", &self.preprocessing_version)
            .field("vector", &"[redacted]")
            .finish()
    }
}

/// The two templates come from different models (or preprocessing): their scores mean nothing together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("templates of different models cannot be compared ({a} vs {b})")]
pub struct ModelMismatch {
    pub a: String,
    pub b: String,
}

/// A stored template could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateDecodeError {
    #[error("not a template (bad magic)")]
    BadMagic,
    #[error("template truncated")]
    Truncated,
    #[error("template field is not valid: {0}")]
    Invalid(&'static str),
}

impl Template {
    fn label(&self) -> String {
        format!(
            "{}@{}/p{}",
            self.model_id, self.model_hash, self.preprocessing_version
        )
    }

    /// Cosine similarity (the vectors are unit length, so the dot product), after checking the models match.
    pub fn cosine(&self, other: &Template) -> Result<f32, ModelMismatch> {
        if self.model_id != other.model_id
            || self.model_hash != other.model_hash
            || self.preprocessing_version != other.preprocessing_version
            || self.vector.len() != other.vector.len()
        {
            return Err(ModelMismatch {
                a: self.label(),
                b: other.label(),
            });
        }
        Ok(self
            .vector
            .iter()
            .zip(&other.vector)
            .map(|(a, b)| a * b)
            .sum())
    }

    /// `JFT1`, u8 id length, id, u8 hash length, hash (ASCII hex), u16 preprocessing version, u16 dimension,
    /// then the dimension's f32 values; integers and floats little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let id = &self.model_id.as_bytes()[..self.model_id.len().min(255)];
        let hash = &self.model_hash.as_bytes()[..self.model_hash.len().min(255)];
        let mut out = Vec::with_capacity(10 + id.len() + hash.len() + 4 * self.vector.len());
        out.extend_from_slice(MAGIC);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.push(hash.len() as u8);
        out.extend_from_slice(hash);
        out.extend_from_slice(&self.preprocessing_version.to_le_bytes());
        let dim = self.vector.len().min(u16::MAX as usize);
        out.extend_from_slice(&(dim as u16).to_le_bytes());
        for v in &self.vector[..dim] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Template, TemplateDecodeError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(TemplateDecodeError::BadMagic);
        }
        let n = r.take(1)?[0] as usize;
        let model_id = String::from_utf8(r.take(n)?.to_vec())
            .map_err(|_| TemplateDecodeError::Invalid("model id"))?;
        let n = r.take(1)?[0] as usize;
        let model_hash = String::from_utf8(r.take(n)?.to_vec())
            .map_err(|_| TemplateDecodeError::Invalid("model hash"))?;
        let p = r.take(2)?;
        let preprocessing_version = u16::from_le_bytes([p[0], p[1]]);
        let d = r.take(2)?;
        let dim = u16::from_le_bytes([d[0], d[1]]) as usize;
        let raw = r.take(dim * 4)?;
        let vector: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if !r.0.is_empty() {
            return Err(TemplateDecodeError::Invalid("trailing bytes"));
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(TemplateDecodeError::Invalid("vector"));
        }
        Ok(Template {
            model_id,
            model_hash,
            preprocessing_version,
            vector,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TemplateDecodeError> {
        if self.0.len() < n {
            return Err(TemplateDecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
}

/// L2-normalises in place; a zero vector stays zero.
pub fn l2_normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, v: Vec<f32>) -> Template {
        Template {
            model_id: id.into(),
            model_hash: "ab".repeat(32),
            preprocessing_version: 1,
            vector: v,
        }
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let a = t("sface-2021dec", vec![0.6, 0.8, 0.0]);
        let b = Template::from_bytes(&a.to_bytes()).expect("round trip");
        assert_eq!(a, b);
        let bytes = a.to_bytes();
        for cut in 0..bytes.len() {
            assert!(Template::from_bytes(&bytes[..cut]).is_err());
        }
        assert_eq!(
            Template::from_bytes(b"XXXX"),
            Err(TemplateDecodeError::BadMagic)
        );
    }

    #[test]
    fn cosine_and_model_mismatch() {
        let a = t("m1", vec![0.6, 0.8]);
        let b = t("m1", vec![0.8, 0.6]);
        assert!((a.cosine(&b).unwrap() - 0.96).abs() < 1e-6);
        assert!(a.cosine(&t("m2", vec![0.6, 0.8])).is_err());
    }

    #[test]
    fn debug_hides_the_vector() {
        let s = format!("{:?}", t("m", vec![0.123456]));
        assert!(!s.contains("0.123456") && s.contains("[redacted]"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
            let _ = Template::from_bytes(&bytes);
            let mut tagged = MAGIC.to_vec();
            tagged.extend_from_slice(&bytes);
            let _ = Template::from_bytes(&tagged);
        }
    }
}
