//! The class mapping every later step uses: COCO category ids (any, sparse) ↔ contiguous
//! class indices 0..n in ascending id order, with names.
use super::coco::Coco;
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassMap {
    /// Category ids in ascending order; position = class index.
    pub ids: Vec<u64>,
    pub names: Vec<String>,
    index: HashMap<u64, usize>,
}

impl ClassMap {
    /// From the file's categories (duplicates: first one wins; validation reports them).
    pub fn from_coco(coco: &Coco) -> Self {
        let mut cats: Vec<(u64, &str)> = coco
            .categories
            .iter()
            .map(|c| (c.id, c.name.as_str()))
            .collect();
        cats.sort_by_key(|c| c.0);
        cats.dedup_by_key(|c| c.0);
        let ids: Vec<u64> = cats.iter().map(|c| c.0).collect();
        let names = cats.iter().map(|c| c.1.to_string()).collect();
        let index = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        ClassMap { ids, names, index }
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Class index of a category id.
    pub fn index(&self, category_id: u64) -> Option<usize> {
        self.index.get(&category_id).copied()
    }
    pub fn name(&self, class: usize) -> &str {
        self.names.get(class).map_or("?", String::as_str)
    }
}
