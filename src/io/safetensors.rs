//! safetensors files: read through a memory map (bytes are copied only when a tensor is
//! asked for), write atomically (temp file + rename). Layout: 8-byte little-endian header
//! length, a JSON header padded with spaces to 8-byte alignment, then the data section.
use crate::tensor::CpuStorage;
use crate::tensor::Storage;
use crate::{DType, Error, Result, Shape, Tensor};
use memmap2::Mmap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes copied out of safetensors buffers into tensors, process-wide.
static BYTES_MATERIALIZED: AtomicU64 = AtomicU64::new(0);

/// Total bytes copied out of any `Safetensors` into tensors so far (process-wide).
pub fn bytes_materialized() -> u64 {
    BYTES_MATERIALIZED.load(Ordering::Relaxed)
}

/// Headers above this are refused before parsing (the reference implementation's limit).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor's entry in the header. `data_offsets` are relative to the data section.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub dtype: DType,
    pub shape: Shape,
    pub data_offsets: (usize, usize),
}

/// A parsed and validated header.
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub tensors: BTreeMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
    /// Where the data section starts in the file (8 + header length).
    pub data_start: usize,
}

fn fmt_err(path: &str, record: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_string(),
        record: record.into(),
        msg: msg.into(),
    }
}

/// safetensors dtype names we read; BOOL is read as U8.
fn parse_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "F32" => DType::F32,
        "F64" => DType::F64,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I8" => DType::I8,
        "U8" | "BOOL" => DType::U8,
        "I32" => DType::I32,
        "I64" => DType::I64,
        _ => return None,
    })
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "F32",
        DType::F64 => "F64",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::I8 => "I8",
        DType::U8 => "U8",
        DType::I32 => "I32",
        DType::I64 => "I64",
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// Parse and validate the header of a whole safetensors buffer. `path` only labels errors.
/// Checks: length prefix, header inside the buffer, JSON shape, known dtypes, byte counts
/// matching shapes, offsets inside the data section, no overlaps and no holes (as the
/// format requires, so a file cannot hide other content).
pub fn parse_header(path: &str, buf: &[u8]) -> Result<Header> {
    if buf.len() < 8 {
        return Err(fmt_err(
            path,
            "header",
            format!(
                "truncated file: {} bytes, a safetensors file starts with an 8-byte header length",
                buf.len()
            ),
        ));
    }
    let n = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    let avail = (buf.len() - 8) as u64;
    if n > avail {
        return Err(fmt_err(
            path,
            "header",
            format!(
                "header length {n} is larger than the file ({avail} bytes after the length prefix)"
            ),
        ));
    }
    if n > MAX_HEADER {
        return Err(fmt_err(
            path,
            "header",
            format!("header length {n} is over the {MAX_HEADER}-byte limit"),
        ));
    }
    let data_start = 8 + n as usize;
    let raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&buf[8..data_start])
            .map_err(|e| fmt_err(path, "header", format!("bad JSON: {e}")))?;
    let data_len = buf.len() - data_start;
    let mut h = Header {
        data_start,
        ..Default::default()
    };
    for (name, v) in raw {
        if name == "__metadata__" {
            h.metadata = serde_json::from_value(v).map_err(|e| {
                fmt_err(path, "__metadata__", format!("expected string values: {e}"))
            })?;
            continue;
        }
        let rec = || format!("tensor {name:?}");
        let r: RawInfo = serde_json::from_value(v)
            .map_err(|e| fmt_err(path, rec(), format!("bad entry: {e}")))?;
        let dtype = parse_dtype(&r.dtype).ok_or_else(|| {
            fmt_err(
                path,
                rec(),
                format!(
                    "dtype {:?} is not supported (supported: F32 F64 F16 BF16 I8 U8 I32 I64 BOOL)",
                    r.dtype
                ),
            )
        })?;
        let (b, e) = r.data_offsets;
        if b > e || e > data_len {
            return Err(fmt_err(
                path,
                rec(),
                format!(
                    "data offsets [{b}, {e}] out of range: the data section is {data_len} bytes"
                ),
            ));
        }
        let want = r
            .shape
            .iter()
            .try_fold(dtype.size_in_bytes(), |a, &d| a.checked_mul(d));
        if want != Some(e - b) {
            return Err(fmt_err(
                path,
                rec(),
                format!(
                    "shape {:?} of {} needs {} bytes but data offsets [{b}, {e}] span {}",
                    r.shape,
                    r.dtype,
                    want.map_or("too many".to_string(), |w| w.to_string()),
                    e - b
                ),
            ));
        }
        h.tensors.insert(
            name,
            TensorInfo {
                dtype,
                shape: Shape::new(r.shape),
                data_offsets: (b, e),
            },
        );
    }
    check_coverage(path, &h.tensors, data_len)?;
    Ok(h)
}

/// The tensors must tile the data section exactly: no overlap, no gap, nothing after.
fn check_coverage(path: &str, t: &BTreeMap<String, TensorInfo>, data_len: usize) -> Result<()> {
    let mut spans: Vec<(&String, (usize, usize))> =
        t.iter().map(|(k, v)| (k, v.data_offsets)).collect();
    spans.sort_by_key(|&(k, (b, e))| (b, e, k));
    let mut end = 0usize;
    let mut prev: Option<&String> = None;
    for (name, (b, e)) in spans {
        if b < end {
            let p = prev.map_or(String::new(), |p| format!(" of tensor {p:?}"));
            return Err(fmt_err(
                path,
                format!("tensor {name:?}"),
                format!("data offsets [{b}, {e}] overlap the bytes before {end}{p}"),
            ));
        }
        if b > end {
            return Err(fmt_err(
                path,
                format!("tensor {name:?}"),
                format!("gap in the data section: bytes {end}..{b} belong to no tensor"),
            ));
        }
        end = e;
        prev = Some(name);
    }
    if end != data_len {
        return Err(fmt_err(
            path,
            "data",
            format!(
                "{} bytes after the last tensor belong to no tensor",
                data_len - end
            ),
        ));
    }
    Ok(())
}

enum Buffer {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Map(m) => m,
            Buffer::Owned(v) => v,
        }
    }
}

/// An open safetensors file. Opening maps it and parses the header; tensor bytes are copied
/// only by `tensor(name)`.
pub struct Safetensors {
    path: String,
    buf: Buffer,
    header: Header,
    copied: AtomicU64,
}

impl std::fmt::Debug for Safetensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Safetensors({}, {} tensors)", self.path, self.len())
    }
}

impl Safetensors {
    /// Map `path` and validate its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Safetensors> {
        let p = path.as_ref();
        let io = |source| Error::Io {
            path: p.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(p).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let name = p.display().to_string();
        if len < 8 {
            // Too short to hold the length prefix; also avoids mapping an empty file.
            return Err(fmt_err(
                &name,
                "header",
                format!(
                    "truncated file: {len} bytes, a safetensors file starts with an 8-byte header length"
                ),
            ));
        }
        // SAFETY: the map is read-only; like every mmap reader we rely on the file not being
        // truncated underneath us while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header = parse_header(&name, &map)?;
        Ok(Safetensors {
            path: name,
            buf: Buffer::Map(map),
            header,
            copied: AtomicU64::new(0),
        })
    }

    /// Parse a whole file held in memory (tests, fuzzing, network payloads).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Safetensors> {
        let path = "<memory>".to_string();
        let header = parse_header(&path, &bytes)?;
        Ok(Safetensors {
            path,
            buf: Buffer::Owned(bytes),
            header,
            copied: AtomicU64::new(0),
        })
    }

    /// The file this came from (`<memory>` for `from_bytes`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.header.tensors.keys().map(|s| s.as_str()).collect()
    }
    pub fn len(&self) -> usize {
        self.header.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.header.tensors.is_empty()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.header.tensors.contains_key(name)
    }
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.get(name)
    }
    fn info_or_err(&self, name: &str) -> Result<&TensorInfo> {
        self.info(name).ok_or_else(|| {
            fmt_err(
                &self.path,
                format!("tensor {name:?}"),
                "no such tensor in the file",
            )
        })
    }
    pub fn dtype(&self, name: &str) -> Result<DType> {
        Ok(self.info_or_err(name)?.dtype)
    }
    pub fn shape(&self, name: &str) -> Result<&Shape> {
        Ok(&self.info_or_err(name)?.shape)
    }
    /// The `__metadata__` map (empty when the file has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }
    /// Bytes this file has copied into tensors so far.
    pub fn bytes_copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }

    /// Copy one tensor out of the buffer.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let info = self.info_or_err(name)?;
        let (b, e) = info.data_offsets;
        let start = self.header.data_start;
        let bytes = &self.buf.bytes()[start + b..start + e];
        let st = CpuStorage::from_le_bytes(info.dtype, bytes);
        let n = (e - b) as u64;
        self.copied.fetch_add(n, Ordering::Relaxed);
        BYTES_MATERIALIZED.fetch_add(n, Ordering::Relaxed);
        Tensor::from_cpu_storage(st, info.shape.clone())
    }
}

/// Serialise tensors (and optional `__metadata__`) in safetensors layout into `w`.
/// Tensors are laid out in the given order; names must be unique.
pub fn write_safetensors(
    w: &mut dyn Write,
    tensors: &[(String, Tensor)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    if let Some(m) = metadata {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(m).expect("strings"),
        );
    }
    let mut offset = 0usize;
    let mut bodies = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name == "__metadata__" || header.contains_key(name) {
            return Err(Error::msg(format!(
                "save_safetensors: tensor name {name:?} is repeated or reserved"
            )));
        }
        let t = t.contiguous()?;
        let nbytes = t.elem_count() * t.dtype().size_in_bytes();
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype_name(t.dtype()),
                "shape": t.dims(),
                "data_offsets": [offset, offset + nbytes],
            }),
        );
        offset += nbytes;
        bodies.push(t);
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| Error::msg(format!("{e}")))?;
    // Pad with spaces so the data section starts 8-byte aligned.
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let io = |e: std::io::Error| Error::msg(format!("save_safetensors: write failed: {e}"));
    w.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&json).map_err(io)?;
    for t in &bodies {
        let st = t.read_storage();
        let Storage::Cpu(c) = &*st;
        let sz = t.dtype().size_in_bytes();
        let o = t.layout().offset * sz;
        w.write_all(&c.as_bytes()[o..o + t.elem_count() * sz])
            .map_err(io)?;
    }
    Ok(())
}

/// `write_safetensors` into a byte vector.
pub fn to_safetensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    write_safetensors(&mut v, tensors, metadata)?;
    Ok(v)
}

/// Write a safetensors file atomically: into a temporary file in the same directory, synced,
/// then renamed over `path`, so a crash never leaves a half-written file.
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    crate::io::atomic::write_atomic(path, |w| write_safetensors(w, tensors, metadata))
}
