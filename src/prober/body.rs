//! The search-string window: the first 5120 bytes of the decoded body.
//!
//! Pure and incremental: compressed chunks are pushed as they arrive and decoding
//! stops as soon as the window is full, so a large (or maliciously compressible)
//! body costs at most one window of output and never gets downloaded in full.
//! `Content-Encoding: deflate` is accepted zlib-wrapped (as the RFC says) or raw
//! (as some servers send it), told apart by the zlib header.

use flate2::{Decompress, FlushDecompress, Status};

/// How much of the decoded body the search string must lie within.
pub const SEARCH_WINDOW: usize = 5120;

/// Bound on a gzip header (its optional name, comment and extra field).
const MAX_GZIP_HEADER: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    /// Parses a `Content-Encoding` value; `None` for encodings that cannot be decoded.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        let value = value.map(str::trim).unwrap_or("");
        if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Some(Self::Identity)
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Some(Self::Gzip)
        } else if value.eq_ignore_ascii_case("deflate") {
            Some(Self::Deflate)
        } else {
            None
        }
    }
}

enum Codec {
    Identity,
    /// Collecting the gzip header; the deflate stream starts after it.
    GzipHeader(Vec<u8>),
    /// Waiting for two bytes to tell a zlib header from raw deflate.
    DeflateSniff(Vec<u8>),
    Inflate(Box<Decompress>),
    /// The compressed stream ended; anything after it is ignored.
    Ended,
}

/// The decoded start of a body, filled chunk by chunk.
pub struct BodyWindow {
    out: Vec<u8>,
    codec: Codec,
}

impl BodyWindow {
    pub fn new(encoding: Encoding) -> Self {
        let codec = match encoding {
            Encoding::Identity => Codec::Identity,
            Encoding::Gzip => Codec::GzipHeader(Vec::new()),
            Encoding::Deflate => Codec::DeflateSniff(Vec::new()),
        };
        Self { out: Vec::with_capacity(SEARCH_WINDOW), codec }
    }

    /// True once the window holds all it ever will; stop reading the body then.
    pub fn is_full(&self) -> bool {
        self.out.len() >= SEARCH_WINDOW || matches!(self.codec, Codec::Ended)
    }

    pub fn decoded(&self) -> &[u8] {
        &self.out[..self.out.len().min(SEARCH_WINDOW)]
    }

    /// Whether `needle` lies entirely within the window.
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.decoded().windows(needle.len()).any(|w| w == needle)
    }

    /// Adds the next chunk of the (encoded) body.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() && !self.is_full() {
            match &mut self.codec {
                Codec::Identity => {
                    let take = data.len().min(SEARCH_WINDOW - self.out.len());
                    self.out.extend_from_slice(&data[..take]);
                    data = &[];
                }
                Codec::GzipHeader(header) => {
                    let before = header.len();
                    header.extend_from_slice(&data[..data.len().min(MAX_GZIP_HEADER + 1 - before)]);
                    match gzip_header_len(header)? {
                        Some(len) => {
                            // Only the bytes of this chunk past the header go on.
                            data = &data[len - before..];
                            self.codec = Codec::Inflate(Box::new(Decompress::new(false)));
                        }
                        None if header.len() > MAX_GZIP_HEADER => {
                            return Err("gzip header is too long".into());
                        }
                        None => data = &[],
                    }
                }
                Codec::DeflateSniff(first) => {
                    let take = data.len().min(2 - first.len());
                    first.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if first.len() == 2 {
                        let head = std::mem::take(first);
                        let mut inflater =
                            Box::new(Decompress::new(is_zlib_header(head[0], head[1])));
                        let ended = inflate(&mut inflater, &head, &mut self.out)?;
                        self.codec = if ended { Codec::Ended } else { Codec::Inflate(inflater) };
                    }
                }
                Codec::Inflate(inflater) => {
                    if inflate(inflater, data, &mut self.out)? {
                        self.codec = Codec::Ended;
                    }
                    data = &[];
                }
                Codec::Ended => data = &[],
            }
        }
        Ok(())
    }

    /// Call when the body ended: a body cut off inside a compression header is an error.
    pub fn finish(&mut self) -> Result<(), String> {
        match &mut self.codec {
            Codec::GzipHeader(_) => Err("the body ended inside the gzip header".into()),
            // A one-byte deflate body: too short for a zlib header, so try it raw.
            Codec::DeflateSniff(first) if !first.is_empty() => {
                let head = std::mem::take(first);
                self.codec = Codec::Ended;
                inflate(&mut Decompress::new(false), &head, &mut self.out).map(drop)
            }
            _ => Ok(()),
        }
    }
}

/// Inflates `input` into `out` up to the window size. Returns true at the end of the stream.
fn inflate(inflater: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
    while out.len() < SEARCH_WINDOW {
        // decompress_vec never grows the vector: it writes into spare capacity only.
        out.reserve_exact(SEARCH_WINDOW - out.len());
        let (in_before, out_before) = (inflater.total_in(), out.len());
        let status = inflater
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|e| format!("corrupt compressed body: {e}"))?;
        out.truncate(SEARCH_WINDOW);
        input = &input[(inflater.total_in() - in_before) as usize..];
        if status == Status::StreamEnd {
            return Ok(true);
        }
        if input.is_empty() || (inflater.total_in() == in_before && out.len() == out_before) {
            break;
        }
    }
    Ok(false)
}

/// RFC 1950: compression method 8, window ≤ 32K, header checksum.
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// Length of the RFC 1952 header at the start of `buf`, or `None` when more bytes are needed.
fn gzip_header_len(buf: &[u8]) -> Result<Option<usize>, String> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if buf.len() >= 2 && buf[..2] != [0x1f, 0x8b] {
        return Err("Content-Encoding is gzip but the body is not gzip data".into());
    }
    if buf.len() >= 3 && buf[2] != 8 {
        return Err(format!("unsupported gzip compression method {}", buf[2]));
    }
    if buf.len() < 10 {
        return Ok(None);
    }
    let flags = buf[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(len) = buf.get(at..at + 2) else { return Ok(None) };
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let Some(rest) = buf.get(at..) else { return Ok(None) };
            let Some(nul) = rest.iter().position(|&b| b == 0) else { return Ok(None) };
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((buf.len() >= at).then_some(at))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

    use super::*;

    fn body_with(needle: &str, at: usize, total: usize) -> Vec<u8> {
        let mut body = vec![b'.'; total];
        body[at..at + needle.len()].copy_from_slice(needle.as_bytes());
        body
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Pushes `encoded` in chunks of `chunk` bytes, as a server might send it.
    fn window(encoding: Encoding, encoded: &[u8], chunk: usize) -> BodyWindow {
        let mut w = BodyWindow::new(encoding);
        for part in encoded.chunks(chunk) {
            w.push(part).unwrap();
            if w.is_full() {
                return w;
            }
        }
        w.finish().unwrap();
        w
    }

    #[test]
    fn identity_window_boundary() {
        let needle = "ALIVE-AND-WELL";
        let inside = body_with(needle, SEARCH_WINDOW - needle.len(), 20_000);
        let straddling = body_with(needle, SEARCH_WINDOW - needle.len() + 1, 20_000);
        for chunk in [1, 7, 4096, 100_000] {
            assert!(window(Encoding::Identity, &inside, chunk).contains(needle.as_bytes()));
            assert!(!window(Encoding::Identity, &straddling, chunk).contains(needle.as_bytes()));
        }
    }

    #[test]
    fn every_encoding_decodes_in_any_chunking() {
        let needle = "needle-123";
        let plain = body_with(needle, 5100, 50_000);
        let late = body_with(needle, 5200, 50_000);
        for (encoding, encode) in [
            (Encoding::Gzip, gzip as fn(&[u8]) -> Vec<u8>),
            (Encoding::Deflate, zlib),
            (Encoding::Deflate, raw),
        ] {
            for chunk in [1, 2, 3, 10, 512, 1 << 20] {
                let w = window(encoding, &encode(&plain), chunk);
                assert!(w.contains(needle.as_bytes()), "{encoding:?} chunk {chunk}");
                assert_eq!(w.decoded().len(), SEARCH_WINDOW);
                assert!(!window(encoding, &encode(&late), chunk).contains(needle.as_bytes()));
            }
        }
    }

    #[test]
    fn short_compressed_body_ends_the_stream() {
        let w = window(Encoding::Gzip, &gzip(b"hello world"), 3);
        assert_eq!(w.decoded(), b"hello world");
        assert!(w.is_full(), "the stream ended, nothing more to read");
    }

    #[test]
    fn gzip_header_with_name_and_extra() {
        let mut e = flate2::GzBuilder::new()
            .filename("index.html")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::fast());
        e.write_all(b"the string").unwrap();
        let data = e.finish().unwrap();
        for chunk in [1, 5, 1000] {
            assert!(window(Encoding::Gzip, &data, chunk).contains(b"string"));
        }
    }

    #[test]
    fn compression_bomb_stops_at_the_window() {
        let data = gzip(&vec![b'a'; 10 << 20]);
        let mut w = BodyWindow::new(Encoding::Gzip);
        w.push(&data).unwrap();
        assert!(w.is_full());
        assert_eq!(w.decoded().len(), SEARCH_WINDOW);
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut w = BodyWindow::new(Encoding::Gzip);
        assert!(w.push(b"<html>not gzip</html>").is_err());
        let mut w = BodyWindow::new(Encoding::Gzip);
        w.push(&[0x1f, 0x8b, 8, 0]).unwrap();
        assert!(w.finish().is_err(), "cut off inside the header");
    }

    #[test]
    fn content_encoding_values() {
        assert_eq!(Encoding::parse(None), Some(Encoding::Identity));
        assert_eq!(Encoding::parse(Some(" GZIP ")), Some(Encoding::Gzip));
        assert_eq!(Encoding::parse(Some("x-gzip")), Some(Encoding::Gzip));
        assert_eq!(Encoding::parse(Some("deflate")), Some(Encoding::Deflate));
        assert_eq!(Encoding::parse(Some("br")), None);
    }

    #[test]
    fn empty_needle_never_matches() {
        assert!(!window(Encoding::Identity, b"abc", 10).contains(b""));
    }
}
