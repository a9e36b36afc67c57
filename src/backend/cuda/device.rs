//! A CUDA device: context, stream, and the per-process cache of kernel modules compiled
//! by NVRTC for this device's compute capability. Found at run time: without a driver or a
//! GPU, `get` returns an error and callers fall back to the CPU.
use super::nvrtc;
use crate::backend::kernels;
use crate::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub struct CudaDevice {
    pub ordinal: usize,
    pub name: String,
    pub cc: (i32, i32),
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    modules: Mutex<HashMap<String, Arc<CudaModule>>>,
}

fn dev_err(msg: impl Into<String>) -> Error {
    Error::Device {
        op: "cuda",
        msg: msg.into(),
    }
}

/// Whether the CUDA driver library can be loaded at all (no GPU call is made).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

impl CudaDevice {
    fn open(ordinal: usize) -> Result<CudaDevice> {
        if !driver_present() {
            return Err(dev_err("no CUDA driver library (libcuda) on this machine"));
        }
        let n = CudaContext::device_count().map_err(|e| dev_err(format!("device count: {e}")))?;
        if ordinal as i32 >= n {
            return Err(dev_err(format!(
                "cuda:{ordinal} requested, {n} device(s) present"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| dev_err(format!("cuda:{ordinal}: {e}")))?;
        let cc = ctx
            .compute_capability()
            .map_err(|e| dev_err(e.to_string()))?;
        let name = ctx.name().map_err(|e| dev_err(e.to_string()))?;
        let stream = ctx.default_stream();
        Ok(CudaDevice {
            ordinal,
            name,
            cc,
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// The device `cuda:ordinal`, opened once per process.
    pub fn get(ordinal: usize) -> Result<&'static CudaDevice> {
        static DEVS: OnceLock<
            Mutex<HashMap<usize, &'static std::result::Result<CudaDevice, String>>>,
        > = OnceLock::new();
        let map = DEVS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = *m.entry(ordinal).or_insert_with(|| {
            Box::leak(Box::new(
                // Keep only the message: `get` wraps it in a fresh Error::Device each call.
                CudaDevice::open(ordinal).map_err(|e| match e {
                    Error::Device { msg, .. } => msg,
                    other => other.to_string(),
                }),
            ))
        });
        entry.as_ref().map_err(|s| dev_err(s.clone()))
    }

    /// `fn_name` from kernels/`file`.cu, compiled for this device on first use.
    pub fn function(&self, file: &str, fn_name: &str) -> Result<CudaFunction> {
        let module = {
            let mut mods = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            match mods.get(file) {
                Some(m) => m.clone(),
                None => {
                    let src = kernels::source(file)
                        .ok_or_else(|| dev_err(format!("no kernel source kernels/{file}.cu")))?;
                    let ptx = nvrtc::global()?.compile_ptx(src, file, self.cc)?;
                    let m = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                        .map_err(|e| dev_err(format!("load {file}.cu: {e}")))?;
                    mods.insert(file.to_string(), m.clone());
                    m
                }
            }
        };
        module
            .load_function(fn_name)
            .map_err(|e| dev_err(format!("{file}.cu: function {fn_name}: {e}")))
    }
}

/// The first GPU if there is one; otherwise None after one notice on stderr, so callers
/// take the CPU path.
pub fn default_device() -> Option<&'static CudaDevice> {
    static NOTICE: std::sync::Once = std::sync::Once::new();
    match CudaDevice::get(0) {
        Ok(d) => Some(d),
        Err(e) => {
            NOTICE.call_once(|| eprintln!("edgedistill: no CUDA device, using the CPU ({e})"));
            None
        }
    }
}
