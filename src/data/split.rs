//! Reproducible train/val/test splits at image level, optionally stratified by class.
//!
//! Images are ordered by id, shuffled with the seed, and dealt out one by one to the split
//! that is furthest behind its requested share (largest `fraction·k − count` after `k`
//! images). That keeps every split within one image of its request at every prefix. To
//! stratify, images are first grouped by their rarest class (the class present in the
//! fewest images; images without objects form their own group) and the groups are dealt
//! in turn, so each group — and with it each class — is divided in the requested
//! proportions as well.
use super::classes::ClassMap;
use super::coco::Coco;
use crate::tensor::Rng;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};

/// `train:0.7,val:0.15,test:0.15`: names and fractions (must be positive and sum to 1).
#[derive(Clone, Debug, PartialEq)]
pub struct SplitSpec {
    pub parts: Vec<(String, f64)>,
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec {
            parts: vec![
                ("train".into(), 0.7),
                ("val".into(), 0.15),
                ("test".into(), 0.15),
            ],
        }
    }
}

impl SplitSpec {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |msg: String| Error::msg(format!("--split {s:?}: {msg}"));
        let mut parts = Vec::new();
        for item in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, frac) = item
                .split_once(':')
                .ok_or_else(|| bad(format!("{item:?} is not name:fraction")))?;
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(bad(format!(
                    "split name {name:?} must be letters, digits, '_' or '-'"
                )));
            }
            let f: f64 = frac
                .trim()
                .parse()
                .map_err(|_| bad(format!("{frac:?} is not a number")))?;
            if !(f > 0.0 && f <= 1.0) {
                return Err(bad(format!("fraction {f} of {name:?} is not in (0, 1]")));
            }
            if parts.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("split {name:?} appears twice")));
            }
            parts.push((name.to_string(), f));
        }
        if parts.is_empty() {
            return Err(bad("no splits given".into()));
        }
        let sum: f64 = parts.iter().map(|p| p.1).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(bad(format!("fractions sum to {sum}, not 1")));
        }
        Ok(SplitSpec { parts })
    }
}

/// Image ids per split (in the spec's order), each list sorted by id.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub names: Vec<String>,
    pub image_ids: Vec<Vec<u64>>,
    /// Human-readable notes, e.g. a class with too few images in a split.
    pub warnings: Vec<String>,
}

/// A class with fewer images than this in a split gets a warning.
pub const MIN_IMAGES_PER_CLASS: usize = 5;

/// Splits the images of `coco` (annotations must reference existing images and known
/// categories; validation guarantees it).
pub fn split(coco: &Coco, spec: &SplitSpec, stratify: bool, seed: u64) -> Split {
    let classes = ClassMap::from_coco(coco);
    let mut image_classes: HashMap<u64, HashSet<usize>> = HashMap::new();
    for a in &coco.annotations {
        if let Some(c) = classes.index(a.category_id) {
            image_classes.entry(a.image_id).or_default().insert(c);
        }
    }
    let mut ids: Vec<u64> = coco.images.iter().map(|im| im.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut ids);

    let order: Vec<u64> = if stratify {
        let mut images_per_class = vec![0usize; classes.len()];
        for cs in image_classes.values() {
            for &c in cs {
                images_per_class[c] += 1;
            }
        }
        // Group key: (rarest class's image count, class index); background last.
        let mut groups: BTreeMap<(usize, usize), Vec<u64>> = BTreeMap::new();
        for &id in &ids {
            let key = image_classes
                .get(&id)
                .and_then(|cs| cs.iter().map(|&c| (images_per_class[c], c)).min())
                .unwrap_or((usize::MAX, usize::MAX));
            groups.entry(key).or_default().push(id);
        }
        groups.into_values().flatten().collect()
    } else {
        ids
    };

    let fracs: Vec<f64> = spec.parts.iter().map(|p| p.1).collect();
    let mut image_ids = vec![Vec::new(); fracs.len()];
    for (k, id) in order.into_iter().enumerate() {
        let k = (k + 1) as f64;
        let s = (0..fracs.len())
            .max_by(|&a, &b| {
                let da = fracs[a] * k - image_ids[a].len() as f64;
                let db = fracs[b] * k - image_ids[b].len() as f64;
                // Ties go to the earlier split (max_by keeps the last maximum).
                da.total_cmp(&db).then(b.cmp(&a))
            })
            .unwrap_or(0);
        image_ids[s].push(id);
    }
    for ids in &mut image_ids {
        ids.sort_unstable();
    }

    let names: Vec<String> = spec.parts.iter().map(|p| p.0.clone()).collect();
    let mut warnings = Vec::new();
    for (c, name) in classes.names.iter().enumerate() {
        let total = image_classes.values().filter(|cs| cs.contains(&c)).count();
        if total == 0 {
            continue;
        }
        for (s, split_ids) in image_ids.iter().enumerate() {
            let n = split_ids
                .iter()
                .filter(|id| image_classes.get(id).is_some_and(|cs| cs.contains(&c)))
                .count();
            if n < MIN_IMAGES_PER_CLASS {
                warnings.push(format!(
                    "class {name:?} (id {}) has {n} image{} in {:?} (of {total} in all; fewer than {MIN_IMAGES_PER_CLASS})",
                    classes.ids[c],
                    if n == 1 { "" } else { "s" },
                    names[s]
                ));
            }
        }
    }
    Split {
        names,
        image_ids,
        warnings,
    }
}

/// The part of `coco` that belongs to `image_ids`: those images, their annotations, all
/// categories and the top-level extras (info, licenses).
pub fn subset(coco: &Coco, image_ids: &[u64]) -> Coco {
    let keep: HashSet<u64> = image_ids.iter().copied().collect();
    Coco {
        images: coco
            .images
            .iter()
            .filter(|im| keep.contains(&im.id))
            .cloned()
            .collect(),
        annotations: coco
            .annotations
            .iter()
            .filter(|a| keep.contains(&a.image_id))
            .cloned()
            .collect(),
        categories: coco.categories.clone(),
        extra: coco.extra.clone(),
    }
}
