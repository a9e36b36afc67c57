//! The engine file (spec: `docs/ENGINE.md`): a 64-byte fixed header, a JSON header, then
//! 64-byte-aligned tensor data. Opening maps the file and checks magic, version, sizes,
//! both checksums, the tensor table's bounds and the graph's shapes before anything runs,
//! so a corrupt or truncated file is an error, never a crash. Weights are used in place
//! from the map.
use super::exec::Weights;
use super::graph::{Graph, Node, Op, ValueInfo, WeightData};
use super::shapes::infer_shapes;
use crate::io::atomic::write_atomic;
use crate::io::checksum::fnv1a64;
use crate::{Error, Result};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"EDENGINE";
pub const VERSION: u32 = 1;
/// `format` value of the JSON header.
pub const FORMAT: &str = "edgedistill-engine";
const FIXED: usize = 64;
const ALIGN: usize = 64;

/// How an image becomes the `images` input (ultralytics' predictor, `rect=False`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// "letterbox": resize keeping aspect ratio to fit `size`, centre, pad with `pad_value`.
    pub resize: String,
    pub size: usize,
    pub pad_value: u8,
    /// Multiplier from u8 to the input (1/255).
    pub scale: f64,
    pub channels: String,
    pub layout: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub dtype: String,
    /// Batch 1 in dim 0; the batch is free.
    pub shape: Vec<usize>,
    pub preprocess: Preprocess,
}

/// One result of `Engine::run`, after the postprocess.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<String>,
    pub meaning: String,
}

/// The student's postprocess defaults (ultralytics predictor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostprocessSpec {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    pub mask_threshold: f32,
}

/// What the network is, for readers that do not run the ops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub family: String,
    pub task: String,
    pub nc: usize,
    pub nm: usize,
    pub reg_max: usize,
    /// The ultralytics model config it was built from.
    pub config: serde_json::Value,
}

/// One constant: where its bytes are, relative to the data section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub offset: u64,
    pub nbytes: u64,
}

/// The JSON header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub precision: String,
    pub model: ModelInfo,
    pub names: Vec<String>,
    pub category_ids: Vec<u64>,
    pub input: InputSpec,
    /// The graph's own outputs (`pred`, `proto`), before the postprocess.
    pub raw_outputs: Vec<ValueInfo>,
    pub outputs: Vec<OutputSpec>,
    pub postprocess: PostprocessSpec,
    pub ops: Vec<Node>,
    pub tensors: Vec<TensorEntry>,
}

/// Everything besides the graph that goes into the header.
#[derive(Clone, Debug)]
pub struct EngineMeta {
    pub model: ModelInfo,
    pub names: Vec<String>,
    pub category_ids: Vec<u64>,
    pub postprocess: PostprocessSpec,
}

fn outputs_spec(seg: bool) -> Vec<OutputSpec> {
    let o = |n: &str, d: &str, s: &[&str], m: &str| OutputSpec {
        name: n.into(),
        dtype: d.into(),
        shape: s.iter().map(|x| x.to_string()).collect(),
        meaning: m.into(),
    };
    let mut v = vec![
        o(
            "boxes",
            "f32",
            &["n", "4"],
            "x1 y1 x2 y2 in the original image's pixels",
        ),
        o("scores", "f32", &["n"], "class confidence"),
        o("class_ids", "i64", &["n"], "index into names"),
    ];
    if seg {
        v.push(o(
            "masks",
            "u8",
            &["n", "height", "width"],
            "instance masks at the original image size, 0/1",
        ));
    }
    v
}

fn pad_to(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// The bytes of an engine for `graph` (f32 weights).
pub fn engine_bytes(graph: &Graph, meta: &EngineMeta) -> Result<Vec<u8>> {
    graph.validate()?;
    let input = graph
        .input
        .clone()
        .ok_or_else(|| Error::msg("engine: graph has no input"))?;
    let mut tensors = Vec::with_capacity(graph.weights.len());
    let mut off = 0usize;
    for (name, w) in &graph.weights {
        let nbytes = w.len() * w.elem_size();
        tensors.push(TensorEntry {
            name: name.clone(),
            dtype: match w.data {
                WeightData::F32(_) => "f32",
                WeightData::I8(_) => "i8",
            }
            .into(),
            shape: w.shape.clone(),
            offset: off as u64,
            nbytes: nbytes as u64,
        });
        off = pad_to(off + nbytes);
    }
    let mut data = vec![0u8; off];
    for ((_, w), t) in graph.weights.iter().zip(&tensors) {
        let dst = &mut data[t.offset as usize..][..t.nbytes as usize];
        match &w.data {
            WeightData::F32(v) => {
                for (d, v) in dst.chunks_exact_mut(4).zip(v) {
                    d.copy_from_slice(&v.to_le_bytes());
                }
            }
            WeightData::I8(v) => dst.copy_from_slice(bytemuck::cast_slice(v)),
        }
    }
    let size = input.shape.last().copied().unwrap_or(0);
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        precision: if graph.nodes.iter().any(|n| matches!(n.op, Op::QConv { .. })) {
            "int8"
        } else {
            "fp32"
        }
        .into(),
        model: meta.model.clone(),
        names: meta.names.clone(),
        category_ids: meta.category_ids.clone(),
        input: InputSpec {
            name: input.name.clone(),
            dtype: "f32".into(),
            shape: input.shape.clone(),
            preprocess: Preprocess {
                resize: "letterbox".into(),
                size,
                pad_value: 114,
                scale: 1.0 / 255.0,
                channels: "RGB".into(),
                layout: "NCHW".into(),
            },
        },
        raw_outputs: graph.outputs.clone(),
        outputs: outputs_spec(meta.model.nm > 0),
        postprocess: meta.postprocess.clone(),
        ops: graph.nodes.clone(),
        tensors,
    };
    let json =
        serde_json::to_vec(&header).map_err(|e| Error::msg(format!("engine header: {e}")))?;
    let data_off = pad_to(FIXED + json.len());
    let mut out = Vec::with_capacity(data_off + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data_off as u64).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a64(&json).to_le_bytes());
    out.extend_from_slice(&fnv1a64(&data).to_le_bytes());
    out.resize(FIXED, 0);
    out.extend_from_slice(&json);
    out.resize(data_off, 0);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Write an engine for `graph` to `path` atomically; returns its size in bytes.
pub fn write_engine(path: &Path, graph: &Graph, meta: &EngineMeta) -> Result<u64> {
    let bytes = engine_bytes(graph, meta)?;
    write_atomic(path, |w| {
        w.write_all(&bytes).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
    })?;
    Ok(bytes.len() as u64)
}

enum Buffer {
    Map(Mmap),
    /// u64 storage so f32 views of it are aligned.
    Owned(Vec<u64>, usize),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Map(m) => m,
            Buffer::Owned(v, n) => &bytemuck::cast_slice(v)[..*n],
        }
    }
}

/// An opened, checked engine file: its header, its graph (without weight data) and the
/// constants, read in place.
pub struct EngineFile {
    path: String,
    buf: Buffer,
    data_off: usize,
    header: Header,
    graph: Graph,
    table: HashMap<String, usize>,
    /// INT8 conv weights repacked for the kernels on first use (the only weight copy).
    qconv: super::exec::QConvCache,
    /// f32 3×3 conv weights transformed for Winograd on first use.
    winograd: super::exec::WinogradCache,
}

impl EngineFile {
    /// Map and check `path`.
    pub fn open(path: &Path) -> Result<EngineFile> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let name = path.display().to_string();
        if len < FIXED as u64 {
            return Err(fmt_err(
                &name,
                "header",
                format!("truncated: {len} bytes, an engine starts with {FIXED}"),
            ));
        }
        // SAFETY: read-only map; like every mmap reader we rely on the file not being
        // truncated underneath us while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::check(name, Buffer::Map(map))
    }

    /// Check an engine held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: &[u8]) -> Result<EngineFile> {
        let mut v = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
        Self::check("<memory>".into(), Buffer::Owned(v, bytes.len()))
    }

    fn check(path: String, buf: Buffer) -> Result<EngineFile> {
        if cfg!(target_endian = "big") {
            return Err(fmt_err(
                &path,
                "data",
                "engine files are little-endian; this CPU is not".into(),
            ));
        }
        let b = buf.bytes();
        let name = path.clone();
        let e = |rec: &str, m: String| fmt_err(&name, rec, m);
        if b.len() < FIXED {
            return Err(e(
                "header",
                format!(
                    "truncated: {} bytes, an engine starts with {FIXED}",
                    b.len()
                ),
            ));
        }
        if &b[..8] != MAGIC {
            return Err(e(
                "header",
                "bad magic: not an edgedistill engine file".into(),
            ));
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(e(
                "header",
                format!("version {version}, this build reads version {VERSION}"),
            ));
        }
        let (hlen, data_off, data_len) = (u32_at(12) as u64, u64_at(16), u64_at(24));
        let (hsum, dsum) = (u64_at(32), u64_at(40));
        if b[48..FIXED].iter().any(|&x| x != 0) {
            return Err(e("header", "reserved bytes 48..64 are not zero".into()));
        }
        let hend = FIXED as u64 + hlen;
        if data_off % ALIGN as u64 != 0 || data_off < hend || data_off - hend >= ALIGN as u64 {
            return Err(e(
                "header",
                format!("data offset {data_off} does not follow a {hlen}-byte header"),
            ));
        }
        if data_off.checked_add(data_len) != Some(b.len() as u64) {
            return Err(e(
                "header",
                format!(
                    "file is {} bytes, header says {data_off} + {data_len} (truncated or extended)",
                    b.len()
                ),
            ));
        }
        let (hend, data_off) = (hend as usize, data_off as usize);
        let json = &b[FIXED..hend];
        if fnv1a64(json) != hsum {
            return Err(e(
                "header",
                "header checksum mismatch (corrupt file)".into(),
            ));
        }
        if b[hend..data_off].iter().any(|&x| x != 0) {
            return Err(e("header", "padding after the header is not zero".into()));
        }
        if fnv1a64(&b[data_off..]) != dsum {
            return Err(e("data", "data checksum mismatch (corrupt file)".into()));
        }
        let header: Header =
            serde_json::from_slice(json).map_err(|x| e("header", format!("JSON: {x}")))?;
        if header.format != FORMAT || header.version != version {
            return Err(e(
                "header",
                format!("format {:?} version {}", header.format, header.version),
            ));
        }
        let table = check_table(&header.tensors, data_len as usize).map_err(|m| e("tensors", m))?;
        let graph = Graph {
            input: Some(ValueInfo {
                name: header.input.name.clone(),
                shape: header.input.shape.clone(),
            }),
            outputs: header.raw_outputs.clone(),
            nodes: header.ops.clone(),
            weights: Vec::new(),
        };
        let f = EngineFile {
            path: path.clone(),
            buf,
            data_off,
            header,
            graph,
            table,
            qconv: Default::default(),
            winograd: Default::default(),
        };
        f.check_dtypes().map_err(|x| e("ops", x))?;
        f.graph
            .validate_with(&|n| f.table.contains_key(n))
            .and_then(|_| infer_shapes(&f.graph, &|n| f.entry(n).map(|t| t.shape.clone())))
            .map_err(|x| e("ops", x.to_string()))?;
        Ok(f)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Conv constants are f32; a QConv's weight is i8 and its scales and bias f32.
    fn check_dtypes(&self) -> std::result::Result<(), String> {
        for n in &self.graph.nodes {
            for (k, i) in n.inputs.iter().enumerate().skip(1) {
                let want = match n.op {
                    Op::QConv { .. } if k == 1 => "i8",
                    Op::Conv { .. } | Op::QConv { .. } => "f32",
                    _ => continue,
                };
                if let Some(t) = self.entry(i).filter(|t| t.dtype != want) {
                    return Err(format!(
                        "node {:?} input {i:?} is {}, needs {want}",
                        n.name, t.dtype
                    ));
                }
            }
        }
        Ok(())
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The op graph; its constants are read through `self` (see [`Weights`]).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.table.get(name).map(|&i| &self.header.tensors[i])
    }
    /// The raw bytes of constant `name`.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        let t = self.entry(name)?;
        let start = self.data_off + t.offset as usize;
        self.buf.bytes().get(start..start + t.nbytes as usize)
    }
}

impl Weights for EngineFile {
    fn qconv_cache(&self) -> Option<&super::exec::QConvCache> {
        Some(&self.qconv)
    }
    fn winograd_cache(&self) -> Option<&super::exec::WinogradCache> {
        Some(&self.winograd)
    }
    fn has(&self, name: &str) -> bool {
        self.table.contains_key(name)
    }
    fn get_i8(&self, name: &str) -> Option<(&[usize], &[i8])> {
        let t = self.entry(name)?;
        if t.dtype != "i8" {
            return None;
        }
        Some((
            t.shape.as_slice(),
            bytemuck::cast_slice(self.tensor_bytes(name)?),
        ))
    }
    fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        let t = self.entry(name)?;
        if t.dtype != "f32" {
            return None;
        }
        let v = bytemuck::try_cast_slice(self.tensor_bytes(name)?).ok()?;
        Some((t.shape.as_slice(), v))
    }
}

/// Bytes per element of a stored dtype.
fn dtype_size(d: &str) -> Option<u64> {
    match d {
        "f32" => Some(4),
        "i8" => Some(1),
        _ => None,
    }
}

/// Every tensor aligned, inside the data, of the size its shape says, not overlapping
/// another; names unique. Index by name.
fn check_table(
    ts: &[TensorEntry],
    data_len: usize,
) -> std::result::Result<HashMap<String, usize>, String> {
    let mut table = HashMap::with_capacity(ts.len());
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(ts.len());
    for (i, t) in ts.iter().enumerate() {
        let size = dtype_size(&t.dtype)
            .ok_or_else(|| format!("tensor {:?}: unknown dtype {:?}", t.name, t.dtype))?;
        let elems = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        if elems.and_then(|n| n.checked_mul(size)) != Some(t.nbytes) {
            return Err(format!(
                "tensor {:?}: {} bytes for shape {:?} {}",
                t.name, t.nbytes, t.shape, t.dtype
            ));
        }
        let end = t
            .offset
            .checked_add(t.nbytes)
            .filter(|&x| x <= data_len as u64);
        let Some(end) = end else {
            return Err(format!(
                "tensor {:?}: bytes {}+{} past the data ({data_len})",
                t.name, t.offset, t.nbytes
            ));
        };
        if t.offset % ALIGN as u64 != 0 {
            return Err(format!(
                "tensor {:?}: offset {} not {ALIGN}-byte aligned",
                t.name, t.offset
            ));
        }
        if table.insert(t.name.clone(), i).is_some() {
            return Err(format!("tensor {:?} listed twice", t.name));
        }
        spans.push((t.offset, end, &t.name));
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(format!("tensors {:?} and {:?} overlap", w[0].2, w[1].2));
        }
    }
    Ok(table)
}

fn fmt_err(path: &str, record: &str, msg: String) -> Error {
    Error::Format {
        path: path.to_string(),
        record: record.to_string(),
        msg,
    }
}
