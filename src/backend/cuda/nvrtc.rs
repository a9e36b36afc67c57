//! NVRTC, loaded at run time from an explicit path (`EDGEDISTILL_NVRTC`) or the loader path,
//! so the crate builds and starts without CUDA. cudarc's own loader only searches by name;
//! CI points us at the library inside the `nvidia-cuda-nvrtc` wheel, so we load it here.
use crate::{Error, Result};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

type Prog = *mut c_void;
type NvRes = c_int;

/// The NVRTC entry points we use.
pub struct Nvrtc {
    path: String,
    version: (i32, i32),
    create: unsafe extern "C" fn(
        *mut Prog,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvRes,
    compile: unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> NvRes,
    log_size: unsafe extern "C" fn(Prog, *mut usize) -> NvRes,
    log: unsafe extern "C" fn(Prog, *mut c_char) -> NvRes,
    ptx_size: unsafe extern "C" fn(Prog, *mut usize) -> NvRes,
    ptx: unsafe extern "C" fn(Prog, *mut c_char) -> NvRes,
    destroy: unsafe extern "C" fn(*mut Prog) -> NvRes,
    error_string: unsafe extern "C" fn(NvRes) -> *const c_char,
    // Keeps the library mapped for as long as the function pointers above live.
    _lib: libloading::Library,
}

// SAFETY: NVRTC's API is thread-safe for distinct programs; we hold no shared program.
unsafe impl Send for Nvrtc {}
unsafe impl Sync for Nvrtc {}

/// Library names tried on the loader path when `EDGEDISTILL_NVRTC` is unset.
const CANDIDATES: &[&str] = &[
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "nvrtc64_130_0.dll",
    "nvrtc64_120_0.dll",
];

impl Nvrtc {
    /// Load from `EDGEDISTILL_NVRTC` (a file path) or, failing that, the loader path.
    pub fn load() -> Result<Nvrtc> {
        if let Ok(p) = std::env::var("EDGEDISTILL_NVRTC") {
            return Self::load_from(&p).map_err(|e| e.context("EDGEDISTILL_NVRTC"));
        }
        let mut tried = Vec::new();
        for name in CANDIDATES {
            match Self::load_from(name) {
                Ok(n) => return Ok(n),
                Err(e) => tried.push(format!("{name}: {e}")),
            }
        }
        Err(Error::Device {
            op: "nvrtc",
            msg: format!(
                "NVRTC not found (set EDGEDISTILL_NVRTC to libnvrtc's path); tried {}",
                tried.join("; ")
            ),
        })
    }

    pub fn load_from(path: &str) -> Result<Nvrtc> {
        let err = |m: String| Error::Device {
            op: "nvrtc",
            msg: format!("{path}: {m}"),
        };
        // SAFETY: loading NVRTC runs no initialisers with preconditions.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| err(e.to_string()))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the signature matches nvrtc.h for this symbol.
                *unsafe { lib.get($name) }
                    .map_err(|e| err(format!("{}: {e}", String::from_utf8_lossy($name))))?
            };
        }
        let version_fn: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvRes =
            sym!(b"nvrtcVersion");
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        unsafe { version_fn(&mut major, &mut minor) };
        Ok(Nvrtc {
            path: path.to_string(),
            version: (major, minor),
            create: sym!(b"nvrtcCreateProgram"),
            compile: sym!(b"nvrtcCompileProgram"),
            log_size: sym!(b"nvrtcGetProgramLogSize"),
            log: sym!(b"nvrtcGetProgramLog"),
            ptx_size: sym!(b"nvrtcGetPTXSize"),
            ptx: sym!(b"nvrtcGetPTX"),
            destroy: sym!(b"nvrtcDestroyProgram"),
            error_string: sym!(b"nvrtcGetErrorString"),
            _lib: lib,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    fn describe(&self, r: NvRes) -> String {
        // SAFETY: NVRTC returns a static string for every result code.
        let s = unsafe { (self.error_string)(r) };
        if s.is_null() {
            format!("nvrtc error {r}")
        } else {
            unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
        }
    }

    /// Compile CUDA C `src` (file name `name`, for messages) to PTX for compute capability
    /// `cc` (e.g. (9, 0)). A compile error returns NVRTC's log, which names file and line.
    pub fn compile_ptx(&self, src: &str, name: &str, cc: (i32, i32)) -> Result<String> {
        let err = |m: String| Error::Device {
            op: "nvrtc",
            msg: format!("{name}.cu for compute_{}{}: {m}", cc.0, cc.1),
        };
        let c_src = CString::new(src).map_err(|_| err("source contains a NUL byte".into()))?;
        let c_name = CString::new(format!("{name}.cu")).map_err(|_| err("bad name".into()))?;
        let opts: Vec<CString> = [
            format!("--gpu-architecture=compute_{}{}", cc.0, cc.1),
            "--std=c++17".into(),
            "-lineinfo".into(),
        ]
        .into_iter()
        .map(|o| CString::new(o).expect("options have no NUL"))
        .collect();
        let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Prog = std::ptr::null_mut();
        // SAFETY: valid C strings; no headers.
        let r = unsafe {
            (self.create)(
                &mut prog,
                c_src.as_ptr(),
                c_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(err(format!("create program: {}", self.describe(r))));
        }
        // SAFETY: `prog` is a live program until destroyed below, on every path.
        let result = unsafe {
            let r = (self.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
            let mut n = 0usize;
            (self.log_size)(prog, &mut n);
            let mut log = vec![0u8; n.max(1)];
            (self.log)(prog, log.as_mut_ptr() as *mut c_char);
            let log = String::from_utf8_lossy(&log[..n.saturating_sub(1)])
                .trim()
                .to_string();
            if r != 0 {
                Err(err(format!("{}\n{log}", self.describe(r))))
            } else {
                let mut n = 0usize;
                (self.ptx_size)(prog, &mut n);
                let mut ptx = vec![0u8; n.max(1)];
                let r = (self.ptx)(prog, ptx.as_mut_ptr() as *mut c_char);
                if r != 0 {
                    Err(err(format!("get PTX: {}", self.describe(r))))
                } else {
                    ptx.truncate(n.saturating_sub(1));
                    String::from_utf8(ptx).map_err(|_| err("PTX is not UTF-8".into()))
                }
            }
        };
        // SAFETY: destroys the program created above exactly once.
        unsafe { (self.destroy)(&mut prog) };
        result
    }
}

/// The process-wide NVRTC, loaded once (the error is kept and returned again).
pub fn global() -> Result<&'static Nvrtc> {
    static N: OnceLock<std::result::Result<Nvrtc, String>> = OnceLock::new();
    N.get_or_init(|| Nvrtc::load().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|m| Error::Device {
            op: "nvrtc",
            msg: m.clone(),
        })
}
