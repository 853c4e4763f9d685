//! Shared by the fuzz targets: apply the fuzzer's bytes as a patch to a valid sample, so the deep paths
//! (decoders past their headers, signatures and chains) are reached without a committed corpus.

/// `patch` = `[cut_hi, cut_lo, (off_hi, off_lo, value)*]`: sets bytes of `sample`, then cuts
/// `cut % len` bytes off its end (0 = no cut).
#[allow(dead_code)]
pub fn patched(sample: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut out = sample.to_vec();
    if out.is_empty() {
        return out;
    }
    let (cut, edits) = match patch {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => (0, patch),
    };
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([e[0], e[1]])) % out.len();
        out[at] = e[2];
    }
    let cut = cut % out.len();
    out.truncate(out.len() - cut);
    out
}
