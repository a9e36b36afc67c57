//! A problem found in user data: which record, and what is wrong with it. Validation
//! collects them; `--strict` turns the first into an error, otherwise the record is
//! skipped and the problem counted and listed, never dropped silently.
use crate::Error;
use std::fmt;

/// What kind of record a problem is about (for counting and for the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    File,
    Image,
    Annotation,
    Category,
    /// A line of a text file (YOLO labels); `id` is the 1-based line number.
    Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub kind: RecordKind,
    /// The record's id (annotation/image/category id, or line number). `None` when the
    /// record has no readable id; `index` then locates it.
    pub id: Option<u64>,
    /// Position of the record in its array (0-based), or `None` for lines/files.
    pub index: Option<usize>,
    /// Short machine-friendly category of the problem, e.g. `"unknown_image_id"`.
    pub code: &'static str,
    /// What is wrong, in words, with the offending values.
    pub msg: String,
}

impl Problem {
    pub fn new(kind: RecordKind, id: Option<u64>, code: &'static str, msg: String) -> Self {
        Problem {
            kind,
            id,
            index: None,
            code,
            msg,
        }
    }
    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
    /// "annotation 17", "image 3", "line 12", "annotation #5 (no id)".
    pub fn record(&self) -> String {
        let kind = match self.kind {
            RecordKind::File => return "file".into(),
            RecordKind::Image => "image",
            RecordKind::Annotation => "annotation",
            RecordKind::Category => "category",
            RecordKind::Line => "line",
        };
        match (self.id, self.index) {
            (Some(id), _) => format!("{kind} {id}"),
            (None, Some(i)) => format!("{kind} #{i} (no id)"),
            (None, None) => kind.into(),
        }
    }
    /// The problem as an error for the file it came from.
    pub fn into_error(self, path: &str) -> Error {
        Error::Format {
            path: path.into(),
            record: self.record(),
            msg: self.msg,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.record(), self.msg, self.code)
    }
}
