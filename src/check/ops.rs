//! Replays the cases of an `ops` fixture (tools/reference/make_ops_fixture.py) with our
//! ops: the forward result and d(sum(out * gout))/d(arg) for every float argument.
use crate::tensor::{Conv2dParams, ConvTranspose2dParams};
use crate::{Error, Result, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;

/// One case of the fixture's `config` list.
#[derive(Debug, serde::Deserialize)]
pub struct OpCase {
    pub name: String,
    pub op: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub params: Value,
}

fn pair(p: &Value, key: &str, default: usize) -> Result<(usize, usize)> {
    match p.get(key) {
        None => Ok((default, default)),
        Some(v) => {
            let a = v
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| Error::msg(format!("param {key}: expected [a, b], got {v}")))?;
            let n = |x: &Value| {
                x.as_u64()
                    .map(|u| u as usize)
                    .ok_or_else(|| Error::msg(format!("param {key}: not an integer: {x}")))
            };
            Ok((n(&a[0])?, n(&a[1])?))
        }
    }
}
fn num(p: &Value, key: &str) -> Result<f64> {
    p.get(key)
        .and_then(|v| v.as_f64())
        .ok_or_else(|| Error::msg(format!("param {key} missing or not a number")))
}
fn int(p: &Value, key: &str) -> Result<i64> {
    p.get(key)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| Error::msg(format!("param {key} missing or not an integer")))
}
fn flag(p: &Value, key: &str) -> Result<bool> {
    p.get(key)
        .and_then(|v| v.as_bool())
        .ok_or_else(|| Error::msg(format!("param {key} missing or not a bool")))
}

/// Our result for one op on `a` (the case's tensor arguments, in order).
pub fn forward(op: &str, a: &[Tensor], p: &Value) -> Result<Tensor> {
    let need = |n: usize| {
        if a.len() < n {
            Err(Error::msg(format!(
                "op {op}: needs {n} tensor arguments, fixture gives {}",
                a.len()
            )))
        } else {
            Ok(())
        }
    };
    need(1)?;
    let x = &a[0];
    Ok(match op {
        "relu" => x.relu()?,
        "silu" => x.silu()?,
        "gelu" => x.gelu()?,
        "gelu_tanh" => x.gelu_tanh()?,
        "sigmoid" => x.sigmoid()?,
        "tanh" => x.tanh()?,
        "softplus" => x.softplus()?,
        "add" => {
            need(2)?;
            x.add(&a[1])?
        }
        "div" => {
            need(2)?;
            x.div(&a[1])?
        }
        "softmax" => x.softmax(int(p, "dim")? as isize)?,
        "log_softmax" => x.log_softmax(int(p, "dim")? as isize)?,
        "matmul" => {
            need(2)?;
            x.matmul(&a[1])?
        }
        "linear" => {
            need(2)?;
            x.linear(&a[1], a.get(2))?
        }
        "sum" => {
            let dims: Vec<isize> = serde_json::from_value(p["dims"].clone())
                .map_err(|e| Error::msg(format!("param dims: {e}")))?;
            x.sum(&dims, flag(p, "keepdim")?)?
        }
        "var" => {
            let dims: Vec<isize> = serde_json::from_value(p["dims"].clone())
                .map_err(|e| Error::msg(format!("param dims: {e}")))?;
            x.var(&dims, flag(p, "unbiased")?, false)?
        }
        "conv2d" => {
            need(2)?;
            let cp = Conv2dParams {
                stride: pair(p, "stride", 1)?,
                padding: pair(p, "padding", 0)?,
                dilation: pair(p, "dilation", 1)?,
                groups: int(p, "groups").unwrap_or(1) as usize,
            };
            x.conv2d(&a[1], a.get(2), cp)?
        }
        "conv_transpose2d" => {
            need(2)?;
            let cp = ConvTranspose2dParams {
                stride: pair(p, "stride", 1)?,
                padding: pair(p, "padding", 0)?,
                output_padding: pair(p, "output_padding", 0)?,
                dilation: pair(p, "dilation", 1)?,
                groups: int(p, "groups").unwrap_or(1) as usize,
            };
            x.conv_transpose2d(&a[1], a.get(2), cp)?
        }
        "max_pool2d" => x.max_pool2d(
            pair(p, "kernel", 1)?,
            pair(p, "stride", 1)?,
            pair(p, "padding", 0)?,
        )?,
        "adaptive_avg_pool2d" => x.adaptive_avg_pool2d(pair(p, "out", 1)?)?,
        "upsample_nearest2d" => x.upsample_nearest2d(pair(p, "out", 1)?)?,
        "upsample_bilinear2d" => {
            x.upsample_bilinear2d(pair(p, "out", 1)?, flag(p, "align_corners")?)?
        }
        "grid_sample" => {
            need(2)?;
            x.grid_sample(&a[1], flag(p, "align_corners")?)?
        }
        "layer_norm" => {
            need(3)?;
            x.layer_norm(
                int(p, "normalized_ndim")? as usize,
                Some(&a[1]),
                Some(&a[2]),
                num(p, "eps")?,
            )?
        }
        "group_norm" => {
            need(3)?;
            x.group_norm(
                int(p, "num_groups")? as usize,
                Some(&a[1]),
                Some(&a[2]),
                num(p, "eps")?,
            )?
        }
        "batch_norm" => {
            let training = flag(p, "training")?;
            let (rm, rv, w, b) = if training {
                need(3)?;
                (None, None, &a[1], &a[2])
            } else {
                need(5)?;
                (Some(&a[1]), Some(&a[2]), &a[3], &a[4])
            };
            x.batch_norm(
                rm,
                rv,
                Some(w),
                Some(b),
                training,
                num(p, "momentum")?,
                num(p, "eps")?,
            )?
        }
        "gather" => {
            need(2)?;
            x.gather(int(p, "dim")? as isize, &a[1])?
        }
        "index_select" => {
            need(2)?;
            x.index_select(int(p, "dim")? as isize, &a[1])?
        }
        "cumsum" => x.cumsum(int(p, "dim")? as isize)?,
        "attention" => {
            need(5)?;
            x.scaled_dot_product_attention(&a[1], &a[2], Some(&a[3]), Some(&a[4]), None)?
        }
        "lora_linear" => {
            need(5)?;
            x.lora_linear(&a[1], Some(&a[2]), &a[3], &a[4], num(p, "scale")?)?
        }
        "cat" => {
            let refs: Vec<&Tensor> = a.iter().collect();
            Tensor::cat(&refs, int(p, "dim")? as isize)?
        }
        other => {
            return Err(Error::msg(format!(
                "op {other:?} has no replay in edgedistill"
            )));
        }
    })
}

/// Forward and gradients of one case. `inputs` maps arg name → tensor (with `gout`).
/// Returns the output and a map arg name → gradient for args that are float tensors.
pub fn replay(
    case: &OpCase,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<(Tensor, BTreeMap<String, Tensor>)> {
    let get = |k: &str| {
        inputs.get(k).cloned().ok_or_else(|| {
            Error::msg(format!(
                "case {}: tensor inputs.{}.{k} missing",
                case.name, case.name
            ))
        })
    };
    // Fresh leaves so gradients land on them; frozen running stats stay frozen.
    let stats = ["rm", "rv"];
    let leaves: Vec<Tensor> = case
        .args
        .iter()
        .map(|k| {
            let t = get(k)?.detach();
            if t.dtype().is_float() && !stats.contains(&k.as_str()) {
                t.set_requires_grad(true)?;
            }
            Ok(t)
        })
        .collect::<Result<_>>()?;
    let out = forward(&case.op, &leaves, &case.params)
        .map_err(|e| e.context(format!("case {}", case.name)))?;
    let gout = get("gout")?;
    out.mul(&gout)?
        .sum_all()?
        .backward()
        .map_err(|e| e.context(format!("case {} backward", case.name)))?;
    let mut grads = BTreeMap::new();
    for (k, l) in case.args.iter().zip(&leaves) {
        if let Some(g) = l.grad() {
            grads.insert(k.clone(), g);
        }
    }
    Ok((out.detach(), grads))
}

/// The `ops` kind: replay every case and compare its output and every stored gradient.
/// A tensor the fixture holds that we cannot produce is a failed line, never a skip.
pub fn check(fx: &super::Fixture) -> Result<Vec<super::CheckLine>> {
    let cases: Vec<OpCase> = serde_json::from_value(fx.config()?).map_err(|e| Error::Format {
        path: fx.path().to_string(),
        record: "metadata config".into(),
        msg: format!("not a list of op cases: {e}"),
    })?;
    let mut lines = Vec::new();
    for case in &cases {
        let prefix = format!("inputs.{}.", case.name);
        let mut inputs = BTreeMap::new();
        for n in fx.names_with_prefix(&prefix) {
            inputs.insert(n[prefix.len()..].to_string(), fx.tensor(&n)?);
        }
        let out_name = format!("outputs.{}", case.name);
        let grad_names = fx.names_with_prefix(&format!("grads.{}.", case.name));
        match replay(case, &inputs) {
            Ok((out, grads)) => {
                lines.push(fx.compare(&out_name, &out));
                for gname in grad_names {
                    let arg = &gname[format!("grads.{}.", case.name).len()..];
                    match grads.get(arg) {
                        Some(g) => lines.push(fx.compare(&gname, g)),
                        None => lines.push(super::CheckLine::failed(
                            &gname,
                            fx.tensor(&gname)?.shape().clone(),
                            "we produced no gradient",
                        )),
                    }
                }
            }
            Err(e) => {
                for n in std::iter::once(out_name).chain(grad_names) {
                    lines.push(super::CheckLine::failed(
                        &n,
                        fx.tensor(&n)?.shape().clone(),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    Ok(lines)
}
