//! A strict gate of our own in front of the JPEG 2000 decoder (issue 14).
//!
//! The chip photo is a small, 8-bit, one- or three-component Part-1 image. This parser reads the JP2 boxes
//! (signature, `ftyp`, `jp2h` with `ihdr` and `colr`, `jp2c`) or a raw codestream, walks the codestream's
//! main header (SIZ, COD, COC, QCD, QCC), every tile-part header and the tile-part lengths up to EOC, and
//! refuses — before any decoder allocates anything — what a chip photo never is. It allocates nothing
//! itself (it only borrows the input), so a refusal costs a few microseconds and no memory.
//!
//! Every refusal names the rule it broke ([`GateRule::code`]); the engine reports it as
//! `FaceError::Undecodable` with that detail.

/// How far the gate lets a chip photo go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Largest width or height in pixels (a chip photo is a few hundred).
    pub max_side_px: u32,
    /// Largest number of tiles in the image grid.
    pub max_tiles: u32,
}

impl GateLimits {
    /// The chip-photo limits with the given side bound.
    pub fn chip_photo(max_side_px: u32) -> Self {
        Self {
            max_side_px,
            max_tiles: MAX_TILES,
        }
    }
}

impl Default for GateLimits {
    fn default() -> Self {
        Self::chip_photo(1024)
    }
}

/// More tiles than this and the image is refused (a chip photo is one tile).
pub const MAX_TILES: u32 = 4;
/// Wavelet decomposition levels: the Part-1 profiles and every real encoder stay at or below this.
pub const MAX_DECOMPOSITION_LEVELS: u8 = 8;
/// Quality layers.
pub const MAX_LAYERS: u16 = 32;
/// Tile-parts in the whole codestream.
pub const MAX_TILE_PARTS: usize = 64;

/// The rule an image broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateRule {
    /// The JP2 boxes: signature, `ftyp`, `jp2h`/`ihdr`/`colr`, `jp2c`, their order and lengths.
    Container,
    /// The codestream's markers: SOC, SIZ, segment lengths, unknown or misplaced markers.
    Codestream,
    /// Not 1 or 3 components.
    Components,
    /// A component that is not 8-bit unsigned.
    BitDepth,
    /// A sub-sampled component.
    Subsampling,
    /// Zero width or height, or a side beyond the configured bound.
    Dimensions,
    /// Too many tiles or tile-parts, or a tile index outside the grid.
    Tiles,
    /// More decomposition levels than the standard profiles.
    DecompositionLevels,
    /// A code-block size outside the standard's bounds.
    CodeBlockSize,
    /// Coding options a chip photo never uses (layers, progression, ROI, POC, packed headers, HT).
    CodingStyle,
    /// Quantization segments that do not fit the standard.
    Quantization,
    /// A capability (Rsiz) beyond Part 1.
    Profile,
    /// The JP2 header and the codestream disagree.
    HeaderMismatch,
    /// Bytes after the end of the codestream (EOC) or after the last box.
    TrailingData,
    /// The data ends before the codestream does.
    Truncated,
}

impl GateRule {
    /// A stable snake_case name, used in the error detail.
    pub fn code(self) -> &'static str {
        match self {
            GateRule::Container => "jp2_container",
            GateRule::Codestream => "codestream_structure",
            GateRule::Components => "components",
            GateRule::BitDepth => "bit_depth",
            GateRule::Subsampling => "subsampling",
            GateRule::Dimensions => "dimensions",
            GateRule::Tiles => "tiles",
            GateRule::DecompositionLevels => "decomposition_levels",
            GateRule::CodeBlockSize => "code_block_size",
            GateRule::CodingStyle => "coding_style",
            GateRule::Quantization => "quantization",
            GateRule::Profile => "profile",
            GateRule::HeaderMismatch => "header_mismatch",
            GateRule::TrailingData => "trailing_data",
            GateRule::Truncated => "truncated",
        }
    }
}

impl std::fmt::Display for GateRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why the gate refused an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JPEG 2000 refused by rule {rule}: {detail}")]
pub struct GateError {
    pub rule: GateRule,
    pub detail: String,
}

fn refuse<T>(rule: GateRule, detail: impl Into<String>) -> Result<T, GateError> {
    Err(GateError {
        rule,
        detail: detail.into(),
    })
}

/// What the gate learnt about an accepted image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jp2Header {
    pub width: u32,
    pub height: u32,
    /// 1 (grey) or 3.
    pub components: u16,
    pub tiles: u32,
    /// The largest decomposition level count of the main and tile-part COD/COC segments.
    pub decomposition_levels: u8,
    /// In a JP2 container (else a raw codestream).
    pub jp2: bool,
}

impl Jp2Header {
    /// An upper bound of the decoder's sample memory: OpenJPEG keeps each sample as an `i32`, once in the
    /// tile buffers and once in the output image, plus the 8-bit RGB picture we convert it to.
    pub fn decode_budget_bytes(&self) -> u64 {
        let samples = u64::from(self.width) * u64::from(self.height) * u64::from(self.components);
        samples * 4 * 2 + u64::from(self.width) * u64::from(self.height) * 3
    }
}

pub(crate) const JP2_SIGNATURE: [u8; 12] = [
    0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
];
const SOC: u16 = 0xFF4F;
const SIZ: u16 = 0xFF51;
const COD: u16 = 0xFF52;
const COC: u16 = 0xFF53;
const TLM: u16 = 0xFF55;
const PLM: u16 = 0xFF57;
const PLT: u16 = 0xFF58;
const QCD: u16 = 0xFF5C;
const QCC: u16 = 0xFF5D;
const RGN: u16 = 0xFF5E;
const POC: u16 = 0xFF5F;
const PPM: u16 = 0xFF60;
const PPT: u16 = 0xFF61;
const CRG: u16 = 0xFF63;
const COM: u16 = 0xFF64;
const CAP: u16 = 0xFF50;
const CPF: u16 = 0xFF59;
const SOT: u16 = 0xFF90;
const SOD: u16 = 0xFF93;
const EOC: u16 = 0xFFD9;

/// A bounds-checked reader over borrowed bytes; running out is [`GateRule::Truncated`].
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GateError> {
        if self.remaining() < n {
            return refuse(
                GateRule::Truncated,
                format!(
                    "the data ends inside {what} ({n} bytes wanted, {} left)",
                    self.remaining()
                ),
            );
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, GateError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, GateError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GateError> {
        let s = self.take(4, what)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GateError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
}

/// Checks a JP2 file or a raw J2K codestream against the chip-photo rules.
pub fn check(bytes: &[u8], limits: &GateLimits) -> Result<Jp2Header, GateError> {
    if bytes.starts_with(&JP2_SIGNATURE) {
        check_jp2(bytes, limits)
    } else if bytes.starts_with(&SOC.to_be_bytes()) {
        let cs = check_codestream(bytes, limits)?;
        Ok(cs.header(false))
    } else {
        refuse(
            GateRule::Container,
            "neither a JP2 signature box nor a codestream SOC marker",
        )
    }
}

struct JpBox<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    /// The box's length field was 0 ("to the end of the file").
    to_end: bool,
}

fn kind_str(k: &[u8; 4]) -> String {
    k.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '?'
            }
        })
        .collect()
}

/// Reads one box at the cursor.
fn read_box<'a>(c: &mut Cursor<'a>) -> Result<JpBox<'a>, GateError> {
    let start = c.at;
    let lbox = c.u32("a box header")?;
    let kind: [u8; 4] = c
        .take(4, "a box header")?
        .try_into()
        .map_err(|_| GateError {
            rule: GateRule::Truncated,
            detail: "box type".into(),
        })?;
    let (len, to_end) = match lbox {
        0 => ((c.b.len() - start) as u64, true),
        1 => (c.u64("an extended box length")?, false),
        n => (u64::from(n), false),
    };
    let header = (c.at - start) as u64;
    if len < header {
        return refuse(
            GateRule::Container,
            format!(
                "box '{}' declares {len} bytes, less than its header",
                kind_str(&kind)
            ),
        );
    }
    let body_len = usize::try_from(len - header).unwrap_or(usize::MAX);
    let body = c.take(body_len, &format!("box '{}'", kind_str(&kind)))?;
    Ok(JpBox { kind, body, to_end })
}

struct Ihdr {
    height: u32,
    width: u32,
    components: u16,
}

fn check_jp2(bytes: &[u8], limits: &GateLimits) -> Result<Jp2Header, GateError> {
    let mut c = Cursor::new(bytes);
    c.take(JP2_SIGNATURE.len(), "the signature box")?;
    let ftyp = read_box(&mut c)?;
    if &ftyp.kind != b"ftyp" {
        return refuse(
            GateRule::Container,
            "the file type box (ftyp) must follow the signature",
        );
    }
    check_ftyp(ftyp.body)?;
    let mut ihdr: Option<Ihdr> = None;
    loop {
        if c.remaining() == 0 {
            return refuse(
                GateRule::Truncated,
                "the file ends before the codestream box (jp2c)",
            );
        }
        let b = read_box(&mut c)?;
        match &b.kind {
            b"jp2h" => {
                if ihdr.is_some() {
                    return refuse(GateRule::Container, "more than one JP2 header box (jp2h)");
                }
                ihdr = Some(check_jp2h(b.body)?);
            }
            b"jp2c" => {
                let Some(ihdr) = ihdr else {
                    return refuse(
                        GateRule::Container,
                        "the codestream box (jp2c) comes before the JP2 header box (jp2h)",
                    );
                };
                if !b.to_end && c.remaining() != 0 {
                    return refuse(
                        GateRule::TrailingData,
                        format!("{} bytes after the codestream box", c.remaining()),
                    );
                }
                let cs = check_codestream(b.body, limits)?;
                if (ihdr.width, ihdr.height) != (cs.width, cs.height) {
                    return refuse(
                        GateRule::HeaderMismatch,
                        format!(
                            "ihdr says {}×{}, the codestream {}×{}",
                            ihdr.width, ihdr.height, cs.width, cs.height
                        ),
                    );
                }
                if ihdr.components != cs.components {
                    return refuse(
                        GateRule::HeaderMismatch,
                        format!(
                            "ihdr says {} components, the codestream {}",
                            ihdr.components, cs.components
                        ),
                    );
                }
                return Ok(cs.header(true));
            }
            // Metadata boxes a decoder skips.
            b"xml " | b"uuid" | b"uinf" | b"jp2i" => {
                if b.to_end {
                    return refuse(
                        GateRule::Container,
                        "only the codestream box may run to the end",
                    );
                }
            }
            other => {
                return refuse(
                    GateRule::Container,
                    format!("unexpected top-level box '{}'", kind_str(other)),
                )
            }
        }
    }
}

fn check_ftyp(body: &[u8]) -> Result<(), GateError> {
    if body.len() < 8 || (body.len() - 8) % 4 != 0 {
        return refuse(GateRule::Container, "malformed file type box (ftyp)");
    }
    let compatible = body[8..].chunks_exact(4).any(|b| b == b"jp2 ");
    if &body[..4] != b"jp2 " && !compatible {
        return refuse(
            GateRule::Container,
            "the file type box does not list 'jp2 '",
        );
    }
    Ok(())
}

fn check_jp2h(body: &[u8]) -> Result<Ihdr, GateError> {
    let mut c = Cursor::new(body);
    let first = read_box(&mut c)?;
    if &first.kind != b"ihdr" {
        return refuse(
            GateRule::Container,
            "the JP2 header box must start with ihdr",
        );
    }
    let ihdr = check_ihdr(first.body)?;
    let mut colr = 0usize;
    while c.remaining() > 0 {
        let b = read_box(&mut c)?;
        match &b.kind {
            b"colr" => {
                check_colr(b.body, ihdr.components)?;
                colr += 1;
            }
            b"res " => {}
            other => {
                return refuse(
                    GateRule::Container,
                    format!(
                        "the JP2 header holds a '{}' box; a chip photo has only ihdr, colr and res",
                        kind_str(other)
                    ),
                )
            }
        }
    }
    if colr == 0 {
        return refuse(
            GateRule::Container,
            "the JP2 header has no colour box (colr)",
        );
    }
    Ok(ihdr)
}

fn check_ihdr(body: &[u8]) -> Result<Ihdr, GateError> {
    if body.len() != 14 {
        return refuse(
            GateRule::Container,
            "the image header box (ihdr) is not 14 bytes",
        );
    }
    let mut c = Cursor::new(body);
    let height = c.u32("ihdr")?;
    let width = c.u32("ihdr")?;
    let components = c.u16("ihdr")?;
    let bpc = c.u8("ihdr")?;
    let compression = c.u8("ihdr")?;
    if components != 1 && components != 3 {
        return refuse(
            GateRule::Components,
            format!("ihdr declares {components} components; a chip photo has 1 or 3"),
        );
    }
    if bpc != 7 {
        return refuse(
            GateRule::BitDepth,
            "ihdr does not declare 8-bit unsigned components",
        );
    }
    if compression != 7 {
        return refuse(
            GateRule::Container,
            "ihdr compression type is not JPEG 2000 (7)",
        );
    }
    Ok(Ihdr {
        height,
        width,
        components,
    })
}

fn check_colr(body: &[u8], components: u16) -> Result<(), GateError> {
    let mut c = Cursor::new(body);
    let method = c.u8("colr")?;
    c.take(2, "colr")?; // precedence, approximation
    match method {
        1 => {
            if c.remaining() != 4 {
                return refuse(
                    GateRule::Container,
                    "an enumerated colour box is not 7 bytes",
                );
            }
            let cs = c.u32("colr")?;
            let ok = match components {
                1 => cs == 17,
                _ => cs == 16 || cs == 18,
            };
            if !ok {
                return refuse(
                    GateRule::Container,
                    format!("colour space {cs} does not fit {components} component(s)"),
                );
            }
            Ok(())
        }
        // A restricted ICC profile: the bytes are the decoder's to ignore or apply.
        2 => Ok(()),
        m => refuse(
            GateRule::Container,
            format!("colour method {m} is not allowed"),
        ),
    }
}

/// What the codestream walk found.
struct Codestream {
    width: u32,
    height: u32,
    components: u16,
    tiles: u32,
    levels: u8,
}

impl Codestream {
    fn header(&self, jp2: bool) -> Jp2Header {
        Jp2Header {
            width: self.width,
            height: self.height,
            components: self.components,
            tiles: self.tiles,
            decomposition_levels: self.levels,
            jp2,
        }
    }
}

/// Reads a marker segment's length and body (after its marker).
fn segment<'a>(c: &mut Cursor<'a>, name: &str) -> Result<&'a [u8], GateError> {
    let len = c.u16(name)?;
    if len < 2 {
        return refuse(
            GateRule::Codestream,
            format!("{name} segment length {len} is below 2"),
        );
    }
    c.take(usize::from(len) - 2, name)
}

fn check_codestream(cs: &[u8], limits: &GateLimits) -> Result<Codestream, GateError> {
    let mut c = Cursor::new(cs);
    if c.u16("SOC")? != SOC {
        return refuse(
            GateRule::Codestream,
            "the codestream does not start with SOC",
        );
    }
    if c.u16("SIZ")? != SIZ {
        return refuse(GateRule::Codestream, "SIZ does not follow SOC");
    }
    // SIZ is read field by field, so an impossible size is refused even when the segment is cut short.
    let lsiz = c.u16("SIZ")?;
    let siz_at = c.at;
    let mut out = check_siz(&mut c, limits)?;
    if c.at - siz_at + 2 != usize::from(lsiz) {
        return refuse(
            GateRule::Codestream,
            "SIZ length does not fit its component count",
        );
    }
    let comps = out.components;

    // Main header up to the first tile-part.
    let (mut have_cod, mut have_qcd) = (false, false);
    loop {
        let marker = c.u16("the main header")?;
        if marker == SOT {
            break;
        }
        match marker {
            COD => {
                if have_cod {
                    return refuse(GateRule::Codestream, "more than one COD in the main header");
                }
                have_cod = true;
                out.levels = out.levels.max(check_cod(segment(&mut c, "COD")?, comps)?);
            }
            COC => out.levels = out.levels.max(check_coc(segment(&mut c, "COC")?, comps)?),
            QCD => {
                if have_qcd {
                    return refuse(GateRule::Codestream, "more than one QCD in the main header");
                }
                have_qcd = true;
                check_qcd(segment(&mut c, "QCD")?)?;
            }
            QCC => check_qcc(segment(&mut c, "QCC")?, comps)?,
            TLM | PLM | CRG | COM => {
                segment(&mut c, "a main-header segment")?;
            }
            EOC => return refuse(GateRule::Codestream, "EOC before any tile-part"),
            other => return refuse_marker(other, "the main header"),
        }
    }
    if !have_cod || !have_qcd {
        return refuse(GateRule::Codestream, "the main header lacks COD or QCD");
    }

    // Tile-parts: SOT … SOD, data, up to EOC at the very end.
    let mut parts = 0usize;
    loop {
        let sot_at = c.at - 2;
        parts += 1;
        if parts > MAX_TILE_PARTS {
            return refuse(
                GateRule::Tiles,
                format!("more than {MAX_TILE_PARTS} tile-parts"),
            );
        }
        let sot = segment(&mut c, "SOT")?;
        if sot.len() != 8 {
            return refuse(GateRule::Codestream, "SOT segment is not 10 bytes");
        }
        let mut s = Cursor::new(sot);
        let tile = s.u16("SOT")?;
        let psot = s.u32("SOT")?;
        let tpsot = s.u8("SOT")?;
        let tnsot = s.u8("SOT")?;
        if u32::from(tile) >= out.tiles {
            return refuse(
                GateRule::Tiles,
                format!("tile index {tile} outside the grid of {} tiles", out.tiles),
            );
        }
        if tnsot != 0 && tpsot >= tnsot {
            return refuse(
                GateRule::Codestream,
                "tile-part index beyond the tile-part count",
            );
        }
        // The tile-part header.
        loop {
            let marker = c.u16("a tile-part header")?;
            match marker {
                SOD => break,
                COD => out.levels = out.levels.max(check_cod(segment(&mut c, "COD")?, comps)?),
                COC => out.levels = out.levels.max(check_coc(segment(&mut c, "COC")?, comps)?),
                QCD => check_qcd(segment(&mut c, "QCD")?)?,
                QCC => check_qcc(segment(&mut c, "QCC")?, comps)?,
                PLT | COM => {
                    segment(&mut c, "a tile-part segment")?;
                }
                other => return refuse_marker(other, "a tile-part header"),
            }
        }
        let data_at = c.at;
        if psot == 0 {
            // The last tile-part runs up to EOC, which must be the last two bytes.
            if cs.len() < data_at + 2 || cs[cs.len() - 2..] != EOC.to_be_bytes() {
                return refuse(GateRule::Truncated, "the codestream does not end with EOC");
            }
            break;
        }
        let end = sot_at.saturating_add(usize::try_from(psot).unwrap_or(usize::MAX));
        if end < data_at {
            return refuse(
                GateRule::Codestream,
                "tile-part length shorter than its header",
            );
        }
        if end > cs.len() {
            return refuse(
                GateRule::Truncated,
                format!("a tile-part of {psot} bytes runs past the end of the data"),
            );
        }
        c.at = end;
        match c.u16("the marker after a tile-part")? {
            SOT => continue,
            EOC => {
                if c.remaining() != 0 {
                    return refuse(
                        GateRule::TrailingData,
                        format!("{} bytes after EOC", c.remaining()),
                    );
                }
                break;
            }
            other => {
                return refuse(
                    GateRule::Codestream,
                    format!("marker 0x{other:04X} where SOT or EOC must follow a tile-part"),
                )
            }
        }
    }
    Ok(out)
}

fn refuse_marker<T>(marker: u16, place: &str) -> Result<T, GateError> {
    match marker {
        RGN => refuse(
            GateRule::CodingStyle,
            "regions of interest (RGN) are not allowed",
        ),
        POC => refuse(
            GateRule::CodingStyle,
            "progression order changes (POC) are not allowed",
        ),
        PPM | PPT => refuse(
            GateRule::CodingStyle,
            "packed packet headers (PPM/PPT) are not allowed",
        ),
        CAP | CPF => refuse(GateRule::Profile, "HTJ2K (Part 15) markers are not allowed"),
        m => refuse(
            GateRule::Codestream,
            format!("unexpected marker 0x{m:04X} in {place}"),
        ),
    }
}

fn check_siz(c: &mut Cursor<'_>, limits: &GateLimits) -> Result<Codestream, GateError> {
    let rsiz = c.u16("SIZ")?;
    let xsiz = c.u32("SIZ")?;
    let ysiz = c.u32("SIZ")?;
    let xo = c.u32("SIZ")?;
    let yo = c.u32("SIZ")?;
    if xsiz <= xo || ysiz <= yo {
        return refuse(GateRule::Dimensions, "the image area is empty");
    }
    let (w, h) = (xsiz - xo, ysiz - yo);
    if w > limits.max_side_px || h > limits.max_side_px {
        return refuse(
            GateRule::Dimensions,
            format!(
                "{w}×{h} exceeds the chip-photo bound of {} px a side",
                limits.max_side_px
            ),
        );
    }
    let xt = c.u32("SIZ")?;
    let yt = c.u32("SIZ")?;
    let xto = c.u32("SIZ")?;
    let yto = c.u32("SIZ")?;
    let csiz = c.u16("SIZ")?;
    if csiz != 1 && csiz != 3 {
        return refuse(
            GateRule::Components,
            format!("{csiz} components; a chip photo has 1 or 3"),
        );
    }
    for i in 0..csiz {
        let ssiz = c.u8("SIZ")?;
        let (xr, yr) = (c.u8("SIZ")?, c.u8("SIZ")?);
        if ssiz != 7 {
            return refuse(
                GateRule::BitDepth,
                format!(
                    "component {i} is {}-bit {}; a chip photo is 8-bit unsigned",
                    (ssiz & 0x7F) + 1,
                    if ssiz & 0x80 != 0 {
                        "signed"
                    } else {
                        "unsigned"
                    }
                ),
            );
        }
        if xr != 1 || yr != 1 {
            return refuse(
                GateRule::Subsampling,
                format!("component {i} is sub-sampled {xr}×{yr}"),
            );
        }
    }
    if !matches!(rsiz, 0..=2) {
        return refuse(
            GateRule::Profile,
            format!("capabilities 0x{rsiz:04X} beyond JPEG 2000 Part 1 profiles 0 and 1"),
        );
    }
    if xt == 0 || yt == 0 {
        return refuse(GateRule::Tiles, "zero tile size");
    }
    if xto > xo
        || yto > yo
        || u64::from(xto) + u64::from(xt) <= u64::from(xo)
        || u64::from(yto) + u64::from(yt) <= u64::from(yo)
    {
        return refuse(
            GateRule::Tiles,
            "the tile grid does not cover the image origin",
        );
    }
    let nx = u64::from(xsiz - xto).div_ceil(u64::from(xt));
    let ny = u64::from(ysiz - yto).div_ceil(u64::from(yt));
    let tiles = nx * ny;
    if tiles > u64::from(limits.max_tiles) {
        return refuse(
            GateRule::Tiles,
            format!("{tiles} tiles; at most {} allowed", limits.max_tiles),
        );
    }
    Ok(Codestream {
        width: w,
        height: h,
        components: csiz,
        tiles: tiles as u32,
        levels: 0,
    })
}

/// COD: Scod, progression, layers, multiple-component transform, then the SPcod fields.
fn check_cod(body: &[u8], comps: u16) -> Result<u8, GateError> {
    let mut c = Cursor::new(body);
    let scod = c.u8("COD")?;
    let progression = c.u8("COD")?;
    let layers = c.u16("COD")?;
    let mct = c.u8("COD")?;
    if scod & !0x07 != 0 {
        return refuse(
            GateRule::CodingStyle,
            format!("unknown coding style flags 0x{scod:02X}"),
        );
    }
    if progression > 4 {
        return refuse(
            GateRule::CodingStyle,
            format!("unknown progression order {progression}"),
        );
    }
    if layers == 0 || layers > MAX_LAYERS {
        return refuse(
            GateRule::CodingStyle,
            format!("{layers} quality layers; 1 to {MAX_LAYERS} allowed"),
        );
    }
    if mct > 1 || (mct == 1 && comps != 3) {
        return refuse(
            GateRule::CodingStyle,
            format!("multiple-component transform {mct} with {comps} component(s)"),
        );
    }
    spcod(&body[c.at..], scod & 1 == 1, "COD")
}

/// COC: the component, Scoc, then the SPcoc fields.
fn check_coc(body: &[u8], comps: u16) -> Result<u8, GateError> {
    let mut c = Cursor::new(body);
    let comp = c.u8("COC")?;
    let scoc = c.u8("COC")?;
    if u16::from(comp) >= comps {
        return refuse(
            GateRule::Codestream,
            format!("COC for component {comp} of {comps}"),
        );
    }
    if scoc & !0x01 != 0 {
        return refuse(
            GateRule::CodingStyle,
            format!("unknown COC style flags 0x{scoc:02X}"),
        );
    }
    spcod(&body[c.at..], scoc & 1 == 1, "COC")
}

/// Decomposition levels, code-block size and style, transform, precinct sizes; returns the levels.
fn spcod(body: &[u8], precincts: bool, name: &str) -> Result<u8, GateError> {
    let mut c = Cursor::new(body);
    let levels = c.u8(name)?;
    let xcb = c.u8(name)?;
    let ycb = c.u8(name)?;
    let style = c.u8(name)?;
    let transform = c.u8(name)?;
    if levels > MAX_DECOMPOSITION_LEVELS {
        return refuse(
            GateRule::DecompositionLevels,
            format!("{levels} decomposition levels; at most {MAX_DECOMPOSITION_LEVELS}"),
        );
    }
    // Exponents are stored minus 2; the standard allows 4..=1024 a side and at most 4096 samples.
    if xcb > 8 || ycb > 8 || xcb + ycb > 8 {
        return refuse(
            GateRule::CodeBlockSize,
            format!(
                "code-block exponents {}+{}: the standard allows 2..=10 each and 12 together",
                u32::from(xcb) + 2,
                u32::from(ycb) + 2
            ),
        );
    }
    if style & 0xC0 != 0 {
        return refuse(
            GateRule::CodingStyle,
            format!("code-block style 0x{style:02X} (HT or unknown)"),
        );
    }
    if transform > 1 {
        return refuse(
            GateRule::CodingStyle,
            format!("unknown wavelet transform {transform}"),
        );
    }
    let want = if precincts {
        usize::from(levels) + 1
    } else {
        0
    };
    if c.remaining() != want {
        return refuse(
            GateRule::Codestream,
            format!("{name} length does not fit {levels} levels"),
        );
    }
    for r in 0..want {
        let p = c.u8(name)?;
        if r > 0 && (p & 0x0F == 0 || p >> 4 == 0) {
            return refuse(
                GateRule::CodingStyle,
                "a precinct of size 1 above the lowest resolution",
            );
        }
    }
    Ok(levels)
}

fn check_qcd(body: &[u8]) -> Result<(), GateError> {
    let mut c = Cursor::new(body);
    let sq = c.u8("QCD")?;
    let n = c.remaining();
    let bands = match sq & 0x1F {
        0 => n,
        1 if n == 2 => 1,
        2 if n % 2 == 0 => n / 2,
        _ => {
            return refuse(
                GateRule::Quantization,
                format!("quantization style 0x{sq:02X} with {n} bytes"),
            )
        }
    };
    let max = 3 * usize::from(MAX_DECOMPOSITION_LEVELS) + 1;
    if bands == 0 || bands > max {
        return refuse(
            GateRule::Quantization,
            format!("{bands} sub-bands; 1 to {max} allowed"),
        );
    }
    Ok(())
}

fn check_qcc(body: &[u8], comps: u16) -> Result<(), GateError> {
    let Some((&comp, rest)) = body.split_first() else {
        return refuse(GateRule::Truncated, "an empty QCC");
    };
    if u16::from(comp) >= comps {
        return refuse(
            GateRule::Codestream,
            format!("QCC for component {comp} of {comps}"),
        );
    }
    check_qcd(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid raw codestream: SOC, SIZ, COD, QCD, one tile-part with `data`, EOC.
    pub(super) fn codestream(w: u32, h: u32, comps: u16, levels: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, 0x4F, 0xFF, 0x51];
        v.extend_from_slice(&(38 + 3 * comps).to_be_bytes());
        v.extend_from_slice(&0u16.to_be_bytes());
        for x in [w, h, 0, 0, w, h, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&comps.to_be_bytes());
        for _ in 0..comps {
            v.extend_from_slice(&[7, 1, 1]);
        }
        // COD: no precincts, LRCP, 1 layer, MCT iff 3 components, levels, 64×64, style 0, 9-7.
        v.extend_from_slice(&[
            0xFF,
            0x52,
            0,
            12,
            0,
            0,
            0,
            1,
            u8::from(comps == 3),
            levels,
            4,
            4,
            0,
            0,
        ]);
        // QCD: scalar derived quantization, two guard bits.
        v.extend_from_slice(&[0xFF, 0x5C, 0, 5, 0x41, 0x48, 0x80]);
        let psot = (12 + 2 + data.len()) as u32;
        v.extend_from_slice(&[0xFF, 0x90, 0, 10, 0, 0]);
        v.extend_from_slice(&psot.to_be_bytes());
        v.extend_from_slice(&[0, 1, 0xFF, 0x93]);
        v.extend_from_slice(data);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    fn rule(bytes: &[u8]) -> GateRule {
        check(bytes, &GateLimits::default())
            .expect_err("refused")
            .rule
    }

    #[test]
    fn a_plain_codestream_passes() {
        let h = check(
            &codestream(240, 320, 3, 5, &[0x80; 10]),
            &GateLimits::default(),
        )
        .unwrap();
        assert_eq!(
            (
                h.width,
                h.height,
                h.components,
                h.tiles,
                h.decomposition_levels
            ),
            (240, 320, 3, 1, 5)
        );
        assert!(!h.jp2);
    }

    #[test]
    fn each_rule_refuses_what_it_names() {
        assert_eq!(rule(&codestream(240, 320, 4, 5, &[])), GateRule::Components);
        assert_eq!(
            rule(&codestream(2000, 320, 3, 5, &[])),
            GateRule::Dimensions
        );
        assert_eq!(
            rule(&codestream(240, 320, 3, 12, &[])),
            GateRule::DecompositionLevels
        );
        let mut cs = codestream(240, 320, 1, 5, &[1, 2, 3]);
        cs.extend_from_slice(b"junk");
        assert_eq!(rule(&cs), GateRule::TrailingData);
        let cs = codestream(240, 320, 1, 5, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(rule(&cs[..cs.len() - 4]), GateRule::Truncated);
        // 16-bit, signed, sub-sampled: byte 42 is the first component's Ssiz.
        let mut cs = codestream(240, 320, 1, 5, &[]);
        cs[42] = 15;
        assert_eq!(rule(&cs), GateRule::BitDepth);
        cs[42] = 0x87;
        assert_eq!(rule(&cs), GateRule::BitDepth);
        cs[42] = 7;
        cs[43] = 2;
        assert_eq!(rule(&cs), GateRule::Subsampling);
        // Code-block 1024×1024 (exponents 8 + 8).
        let mut cs = codestream(240, 320, 1, 5, &[]);
        let cod = cs.windows(2).position(|w| w == [0xFF, 0x52]).unwrap();
        cs[cod + 10] = 8;
        cs[cod + 11] = 8;
        assert_eq!(rule(&cs), GateRule::CodeBlockSize);
        // Tile 16×16 over 240×320: 300 tiles.
        let mut cs = codestream(240, 320, 1, 5, &[]);
        cs[24..28].copy_from_slice(&16u32.to_be_bytes());
        cs[28..32].copy_from_slice(&16u32.to_be_bytes());
        assert_eq!(rule(&cs), GateRule::Tiles);
        // Rsiz of Part 2.
        let mut cs = codestream(240, 320, 1, 5, &[]);
        cs[6] = 0x80;
        assert_eq!(rule(&cs), GateRule::Profile);
    }

    #[test]
    fn the_component_bomb_is_refused_by_the_component_rule() {
        // 2000×2000, 16,384 components, 100 tiles: the SIZ alone is 49 KB.
        let comps: u16 = 16_384;
        let mut v = vec![0xFF, 0x4F, 0xFF, 0x51];
        v.extend_from_slice(&(38u16.wrapping_add(3 * comps)).to_be_bytes());
        v.extend_from_slice(&0u16.to_be_bytes());
        for x in [2000u32, 2000, 0, 0, 200, 200, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&comps.to_be_bytes());
        for _ in 0..comps {
            v.extend_from_slice(&[7, 1, 1]);
        }
        // Beyond the default side bound first; with a looser bound, the component rule.
        let e = check(&v, &GateLimits::default()).unwrap_err();
        assert_eq!(e.rule, GateRule::Dimensions);
        let loose = GateLimits {
            max_side_px: 4096,
            max_tiles: 1000,
        };
        let e = check(&v, &loose).unwrap_err();
        assert_eq!(e.rule, GateRule::Components);
        assert!(e.to_string().contains("components"), "{e}");
        // Cut inside SIZ: an impossible size is still refused as such.
        let e = check(&v[..30], &GateLimits::default()).unwrap_err();
        assert_eq!(e.rule, GateRule::Dimensions);
    }

    #[test]
    fn jp2_container_rules() {
        let cs = codestream(100, 120, 3, 5, &[0x80; 4]);
        let jp2 = jp2_file(&cs, 100, 120, 3, 16);
        let h = check(&jp2, &GateLimits::default()).unwrap();
        assert!(h.jp2);
        assert_eq!((h.width, h.height), (100, 120));
        // ihdr disagreeing with SIZ.
        let bad = jp2_file(&cs, 101, 120, 3, 16);
        assert_eq!(rule(&bad), GateRule::HeaderMismatch);
        // A colour space that does not fit.
        let bad = jp2_file(&cs, 100, 120, 3, 17);
        assert_eq!(rule(&bad), GateRule::Container);
        // A box after jp2c.
        let mut bad = jp2.clone();
        bad.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
        assert_eq!(rule(&bad), GateRule::TrailingData);
        // Cut inside the codestream box.
        assert_eq!(rule(&jp2[..jp2.len() - 3]), GateRule::Truncated);
        // Signature only.
        assert_eq!(rule(&JP2_SIGNATURE), GateRule::Truncated);
    }

    pub(super) fn jp2_file(cs: &[u8], w: u32, h: u32, nc: u16, enum_cs: u32) -> Vec<u8> {
        let mut v = JP2_SIGNATURE.to_vec();
        v.extend_from_slice(&[
            0, 0, 0, 20, b'f', b't', b'y', b'p', b'j', b'p', b'2', b' ', 0, 0, 0, 0, b'j', b'p',
            b'2', b' ',
        ]);
        let mut ihdr = vec![0, 0, 0, 22, b'i', b'h', b'd', b'r'];
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&nc.to_be_bytes());
        ihdr.extend_from_slice(&[7, 7, 0, 0]);
        let mut colr = vec![0, 0, 0, 15, b'c', b'o', b'l', b'r', 1, 0, 0];
        colr.extend_from_slice(&enum_cs.to_be_bytes());
        let jp2h_len = 8 + ihdr.len() + colr.len();
        v.extend_from_slice(&(jp2h_len as u32).to_be_bytes());
        v.extend_from_slice(b"jp2h");
        v.extend_from_slice(&ihdr);
        v.extend_from_slice(&colr);
        v.extend_from_slice(&((8 + cs.len()) as u32).to_be_bytes());
        v.extend_from_slice(b"jp2c");
        v.extend_from_slice(cs);
        v
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = check(&bytes, &GateLimits::default());
        }

        #[test]
        fn mutations_of_a_valid_file_never_panic_and_accepted_ones_stay_in_bounds(
            flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 1..8),
            cut in 0usize..400,
        ) {
            let cs = codestream(200, 260, 3, 5, &[0x80; 30]);
            let mut jp2 = jp2_file(&cs, 200, 260, 3, 16);
            for (at, b) in flips {
                let n = jp2.len();
                jp2[at % n] = b;
            }
            jp2.truncate(jp2.len() - cut.min(jp2.len()));
            if let Ok(h) = check(&jp2, &GateLimits::default()) {
                proptest::prop_assert!(h.width <= 1024 && h.height <= 1024);
                proptest::prop_assert!(h.components == 1 || h.components == 3);
                proptest::prop_assert!(h.tiles <= MAX_TILES);
                proptest::prop_assert!(h.decomposition_levels <= MAX_DECOMPOSITION_LEVELS);
            }
        }

        #[test]
        fn every_cut_of_a_valid_codestream_is_refused(cut in 1usize..100) {
            let cs = codestream(64, 64, 1, 3, &[0x80; 60]);
            let cut = cut.min(cs.len() - 1);
            proptest::prop_assert!(check(&cs[..cs.len() - cut], &GateLimits::default()).is_err());
        }
    }
}
