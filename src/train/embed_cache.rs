//! A disk cache of image embeddings for training with a frozen image encoder (the SAM
//! teacher): each image's embedding is computed once, written as raw little-endian f32
//! rows, and memory-mapped afterwards, so later epochs (and resumed runs) read instead of
//! running the encoder. `embeddings.json` beside the data names what the cache holds (a
//! key over the encoder's weights, its config and the images, plus the image ids and
//! dims); it is written last, so a cache without a matching index is rebuilt.
use crate::data::progress::Progress;
use crate::io::atomic::write_atomic;
use crate::{DType, Error, Result, Tensor};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Index {
    format: String,
    key: String,
    ids: Vec<u64>,
    /// [C, h, w] of one embedding.
    dims: Vec<usize>,
}

const FORMAT: &str = "edgedistill-embedding-cache-v1";

pub struct EmbeddingCache {
    map: Mmap,
    dims: Vec<usize>,
    ids: Vec<u64>,
    path: PathBuf,
}

impl EmbeddingCache {
    /// Open `dir/embeddings.{f32,json}` when it holds `key` for exactly `ids`; otherwise
    /// compute every embedding with `compute(i)` (a [1, C, h, w] or [C, h, w] tensor of
    /// `dims`), writing as it goes, and open the result. Returns whether it was built.
    pub fn open_or_build(
        dir: &Path,
        key: &str,
        ids: &[u64],
        dims: &[usize],
        progress: bool,
        mut compute: impl FnMut(usize) -> Result<Tensor>,
    ) -> Result<(EmbeddingCache, bool)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let data = dir.join("embeddings.f32");
        let index = dir.join("embeddings.json");
        let want = Index {
            format: FORMAT.into(),
            key: key.into(),
            ids: ids.to_vec(),
            dims: dims.to_vec(),
        };
        if let Ok(c) = Self::open(&data, &index, &want) {
            return Ok((c, false));
        }
        // The index goes first so a crash mid-build leaves no index that matches.
        let _ = std::fs::remove_file(&index);
        let per: usize = dims.iter().product();
        let bar = Progress::new("embedding cache", ids.len() as u64);
        let bar = if progress { bar } else { bar.hidden() };
        write_atomic(&data, |w: &mut dyn Write| {
            for (i, id) in ids.iter().enumerate() {
                let t = compute(i).map_err(|e| e.context(format!("image {id}")))?;
                if t.elem_count() != per {
                    return Err(Error::Shape {
                        op: "embedding cache",
                        msg: format!("image {id}: embedding {} is not {dims:?}", t.shape()),
                    });
                }
                let v = t.to_dtype(DType::F32)?.contiguous()?.to_vec::<f32>()?;
                w.write_all(bytemuck::cast_slice(&v))
                    .map_err(|e| Error::Io {
                        path: data.clone(),
                        source: e,
                    })?;
                bar.inc(1);
            }
            Ok(())
        })?;
        bar.finish();
        let json = serde_json::to_vec_pretty(&want).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&index, |w: &mut dyn Write| {
            w.write_all(&json).map_err(|e| Error::Io {
                path: index.clone(),
                source: e,
            })
        })?;
        Ok((Self::open(&data, &index, &want)?, true))
    }

    fn open(data: &Path, index: &Path, want: &Index) -> Result<EmbeddingCache> {
        let text = std::fs::read(index).map_err(|e| Error::Io {
            path: index.to_path_buf(),
            source: e,
        })?;
        let have: Index = serde_json::from_slice(&text).map_err(|e| Error::Format {
            path: index.display().to_string(),
            record: "index".into(),
            msg: e.to_string(),
        })?;
        if &have != want {
            return Err(Error::msg(
                "embedding cache is for another model or image set",
            ));
        }
        let file = std::fs::File::open(data).map_err(|e| Error::Io {
            path: data.to_path_buf(),
            source: e,
        })?;
        // SAFETY: the file is ours, written completely before its index; nothing writes it
        // while it is mapped (a rebuild writes a new file and renames it over).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::Io {
            path: data.to_path_buf(),
            source: e,
        })?;
        let per: usize = want.dims.iter().product();
        if map.len() != per * want.ids.len() * 4 {
            return Err(Error::Format {
                path: data.display().to_string(),
                record: "data".into(),
                msg: format!(
                    "{} bytes, expected {} ({} embeddings of {:?})",
                    map.len(),
                    per * want.ids.len() * 4,
                    want.ids.len(),
                    want.dims
                ),
            });
        }
        Ok(EmbeddingCache {
            map,
            dims: want.dims.clone(),
            ids: want.ids.clone(),
            path: data.to_path_buf(),
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `i`-th embedding as [1, C, h, w].
    pub fn get(&self, i: usize) -> Result<Tensor> {
        let per: usize = self.dims.iter().product();
        let bytes = self
            .map
            .get(i * per * 4..(i + 1) * per * 4)
            .ok_or_else(|| {
                Error::msg(format!(
                    "{}: embedding {i} of {}",
                    self.path.display(),
                    self.ids.len()
                ))
            })?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut shape = vec![1];
        shape.extend_from_slice(&self.dims);
        Tensor::from_vec(v, shape)
    }
}

/// A cache key: FNV-1a over length-prefixed parts (config text, weights, image list), fed
/// one part at a time so large weights are hashed in place.
pub struct CacheKey(u64);

impl Default for CacheKey {
    fn default() -> Self {
        CacheKey(0xcbf2_9ce4_8422_2325)
    }
}

impl CacheKey {
    pub fn add(&mut self, part: &[u8]) {
        for &b in (part.len() as u64).to_le_bytes().iter().chain(part) {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// Every image of `coco` under `images` by id, path, size and mtime, so an edited or
    /// replaced image file makes a new key.
    pub fn add_images(&mut self, coco: &crate::data::Coco, images: &Path) {
        let mut imgs: Vec<_> = coco.images.iter().collect();
        imgs.sort_by_key(|im| im.id);
        for im in imgs {
            let p = images.join(&im.file_name);
            let stamp = std::fs::metadata(&p).ok().map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{} {t}", m.len())
            });
            self.add(format!("{} {} {stamp:?}", im.id, p.display()).as_bytes());
        }
    }
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
