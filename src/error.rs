//! One error type for the crate. Every variant carries enough to tell the user *which*
//! tensor, file or record is wrong and *why*; nothing in the library panics on user data.
use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// Shapes that do not fit an op: `op` names it, `msg` gives the shapes.
    Shape {
        op: &'static str,
        msg: String,
    },
    /// A dtype the op does not take.
    DType {
        op: &'static str,
        msg: String,
    },
    /// Tensors on different devices, or a device that is not available.
    Device {
        op: &'static str,
        msg: String,
    },
    /// A dimension or index out of range.
    Index {
        op: &'static str,
        msg: String,
    },
    /// An OS-level I/O failure on a named file.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file whose content is wrong: names the file, the record inside it, and the problem.
    Format {
        path: String,
        record: String,
        msg: String,
    },
    /// Loading a state dict into a module tree failed; every offending name is listed.
    Load {
        missing: Vec<String>,
        unexpected: Vec<String>,
        mismatched: Vec<String>,
    },
    /// Autograd misuse (backward of a non-scalar without a seed, etc).
    Autograd(String),
    /// Extra context ("layer model.0.conv") wrapped around an inner error.
    Context {
        context: String,
        source: Box<Error>,
    },
    Msg(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(s: impl Into<String>) -> Self {
        Error::Msg(s.into())
    }
    pub fn context(self, ctx: impl Into<String>) -> Self {
        Error::Context {
            context: ctx.into(),
            source: Box::new(self),
        }
    }
}

/// `.context("...")` on any `Result<T>`.
pub trait ResultExt<T> {
    fn context(self, ctx: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, ctx: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(ctx))
    }
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

fn list(names: &[String]) -> String {
    const SHOW: usize = 20;
    let mut s = names
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOW {
        s.push_str(&format!(", ... ({} more)", names.len() - SHOW));
    }
    s
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, msg } => write!(f, "{op}: shape error: {msg}"),
            Error::DType { op, msg } => write!(f, "{op}: dtype error: {msg}"),
            Error::Device { op, msg } => write!(f, "{op}: device error: {msg}"),
            Error::Index { op, msg } => write!(f, "{op}: index error: {msg}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, record, msg } => write!(f, "{path}: {record}: {msg}"),
            Error::Load {
                missing,
                unexpected,
                mismatched,
            } => {
                write!(f, "state dict does not fit the model")?;
                if !missing.is_empty() {
                    write!(f, "; missing {}: {}", missing.len(), list(missing))?;
                }
                if !unexpected.is_empty() {
                    write!(f, "; unexpected {}: {}", unexpected.len(), list(unexpected))?;
                }
                if !mismatched.is_empty() {
                    write!(
                        f,
                        "; wrong shape {}: {}",
                        mismatched.len(),
                        list(mismatched)
                    )?;
                }
                Ok(())
            }
            Error::Autograd(m) => write!(f, "autograd: {m}"),
            Error::Context { context, source } => write!(f, "{context}: {source}"),
            Error::Msg(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Context { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// `bail!(Shape, "add", "...")`-style early returns keep op code short.
#[macro_export]
macro_rules! bail {
    (Shape, $op:expr, $($arg:tt)*) => { return Err($crate::Error::Shape { op: $op, msg: format!($($arg)*) }) };
    (DType, $op:expr, $($arg:tt)*) => { return Err($crate::Error::DType { op: $op, msg: format!($($arg)*) }) };
    (Index, $op:expr, $($arg:tt)*) => { return Err($crate::Error::Index { op: $op, msg: format!($($arg)*) }) };
    (Device, $op:expr, $($arg:tt)*) => { return Err($crate::Error::Device { op: $op, msg: format!($($arg)*) }) };
    ($($arg:tt)*) => { return Err($crate::Error::Msg(format!($($arg)*))) };
}
