//! LoRA on Grounding DINO's decoder: which modules get adapters, what stays trainable,
//! merge/unmerge, PEFT's no-match error, and (with a Python in EDGEDISTILL_PEFT_PYTHON)
//! that PEFT loads an adapter we save onto transformers' model and gives our outputs.
use edgedistill::Tensor;
use edgedistill::check::Fixture;
use edgedistill::io::StateDict;
use edgedistill::models::grounding_dino::{GroundingDino, GroundingDinoConfig, Inputs, Output};
use edgedistill::nn::{LoraConfig, Module, ParamCount, Proj, TargetModules, state_dict_of};
use std::path::{Path, PathBuf};

/// The decoder's attention projections (the default the training code uses).
const TARGETS: &str = r"model\.decoder\.layers\.\d+\.((self_attn|encoder_attn_text)\.(query|key|value|out_proj)|encoder_attn\.(value_proj|output_proj))";

fn lora() -> LoraConfig {
    LoraConfig::new(16, 32.0, 0.1, TargetModules::Regex(TARGETS.into()))
}

fn pad5() -> (GroundingDinoConfig, StateDict, Fixture) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/grounding-dino-pad5.safetensors");
    let fx = Fixture::open(p).unwrap();
    let cfg = GroundingDinoConfig::from_json(&fx.config().unwrap()).unwrap();
    let sd = fx.state_dict("weights.");
    (cfg, sd, fx)
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

struct In {
    pixel_values: Tensor,
    pixel_mask: Tensor,
    input_ids: Tensor,
    attention_mask: Tensor,
    token_type_ids: Tensor,
}

impl In {
    fn of(fx: &Fixture) -> In {
        let t = |n: &str| fx.tensor(&format!("inputs.{n}")).unwrap();
        In {
            pixel_values: t("pixel_values"),
            pixel_mask: t("pixel_mask"),
            input_ids: t("input_ids"),
            attention_mask: t("attention_mask"),
            token_type_ids: t("token_type_ids"),
        }
    }
    fn run(&self, m: &GroundingDino) -> Output {
        let _g = edgedistill::no_grad();
        m.eval();
        m.forward(&Inputs {
            pixel_values: &self.pixel_values,
            pixel_mask: Some(&self.pixel_mask),
            input_ids: &self.input_ids,
            attention_mask: Some(&self.attention_mask),
            token_type_ids: Some(&self.token_type_ids),
        })
        .unwrap()
        .1
    }
}

/// The three outputs PEFT's check compares.
fn outs(o: &Output) -> [(&'static str, &Tensor); 3] {
    [
        ("logits", &o.logits),
        ("pred_boxes", &o.pred_boxes),
        ("last_hidden_state", &o.last_hidden_state),
    ]
}

/// max |a − b|, equal infinities (the masked logits) counting as equal.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(
            0.0,
            |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        )
}

fn max_abs(t: &Tensor) -> f64 {
    let v = t.to_vec_f64().unwrap();
    v.iter()
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs()))
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// The ten targeted projections of each decoder layer, in build order.
fn targeted(m: &GroundingDino) -> Vec<&Proj> {
    m.decoder
        .layers
        .iter()
        .flat_map(|l| {
            let a = [&l.self_attn, &l.encoder_attn_text];
            a.into_iter()
                .flat_map(|a| [&a.query, &a.key, &a.value, &a.out_proj])
                .chain([&l.encoder_attn.value_proj, &l.encoder_attn.output_proj])
        })
        .collect()
}

/// PEFT starts B at 0; random B makes the adapter visible.
fn randomize_b(m: &dyn Module, seed: u64) {
    let mut rng = edgedistill::tensor::Rng::new(seed);
    let _g = edgedistill::no_grad();
    for (n, t) in m.named_parameters() {
        if n.ends_with("lora_B.weight") {
            t.assign(&Tensor::randn(t.dims().to_vec(), 0.0, 0.3, &mut rng))
                .unwrap();
        }
    }
}

#[test]
fn adapters_on_exactly_the_decoder_attention_projections() {
    let (cfg, sd, _) = pad5();
    let (m, names) =
        GroundingDino::from_state_dict_lora(&cfg, &sd, "pad5", Some((lora(), 3))).unwrap();
    let mut want = Vec::new();
    for i in 0..cfg.decoder_layers {
        for a in ["self_attn", "encoder_attn_text"] {
            for p in ["query", "key", "value", "out_proj"] {
                want.push(format!("model.decoder.layers.{i}.{a}.{p}"));
            }
        }
        for p in ["value_proj", "output_proj"] {
            want.push(format!("model.decoder.layers.{i}.encoder_attn.{p}"));
        }
    }
    assert_eq!(names, want);
    assert_eq!(names.len(), 10 * cfg.decoder_layers);
    assert!(
        targeted(&m)
            .iter()
            .all(|p| p.as_lora().is_some_and(|l| l.rank() == 16))
    );
    // Only A and B train; everything else, the decoder's other weights included, is frozen.
    let mut lora_params = Vec::new();
    for (n, t) in m.named_parameters() {
        let is_lora = n.ends_with(".lora_A.weight") || n.ends_with(".lora_B.weight");
        assert_eq!(t.requires_grad(), is_lora, "{n}");
        if is_lora {
            lora_params.push(n);
        }
    }
    let want_params: Vec<String> = want
        .iter()
        .flat_map(|m| ["lora_A", "lora_B"].map(|ab| format!("{m}.{ab}.weight")))
        .collect();
    assert_eq!(lora_params, want_params);
    // d_model 64, r 16: A [16, 64] + B [64, 16] per module.
    let count = ParamCount::of(&m);
    assert_eq!(count.trainable, names.len() * 2 * 16 * cfg.d_model);
    let line = count.to_string();
    eprintln!("{line}");
    // PEFT prints 902,622 on transformers' model: it also holds Swin's final LayerNorm
    // (2 × 128), which no output uses and we do not build.
    assert_eq!(
        line,
        "trainable params: 61,440 || all params: 902,366 || trainable%: 6.8088"
    );
}

#[test]
fn fresh_adapters_leave_outputs_bit_identical() {
    let (cfg, sd, fx) = pad5();
    let inp = In::of(&fx);
    let base = GroundingDino::from_state_dict(&cfg, &sd, "pad5").unwrap();
    let (m, _) = GroundingDino::from_state_dict_lora(&cfg, &sd, "pad5", Some((lora(), 3))).unwrap();
    let (o0, o1) = (inp.run(&base), inp.run(&m));
    for ((n, a), (_, b)) in outs(&o0).into_iter().zip(outs(&o1)) {
        assert_eq!(bits(a), bits(b), "{n}");
    }
}

#[test]
fn merge_matches_unmerged_and_unmerge_restores() {
    let (cfg, sd, fx) = pad5();
    let inp = In::of(&fx);
    let (m, _) = GroundingDino::from_state_dict_lora(&cfg, &sd, "pad5", Some((lora(), 3))).unwrap();
    randomize_b(&m, 4);
    let w0: Vec<Vec<u32>> = targeted(&m)
        .iter()
        .map(|p| bits(&p.base().weight))
        .collect();
    let y0 = inp.run(&m);
    for p in targeted(&m) {
        p.merge().unwrap();
    }
    let y1 = inp.run(&m);
    for ((n, a), (_, b)) in outs(&y0).into_iter().zip(outs(&y1)) {
        // Merging reorders f32 sums through three layers; logits reach ~20, so the bound
        // is 1e-5 relative to the output's scale (absolute below 1).
        let (d, scale) = (max_diff(a, b), max_abs(a).max(1.0));
        eprintln!("merged vs unmerged {n}: max|d| {d:.3e} (max|y| {scale:.2})");
        assert!(d <= 1e-5 * scale, "{n}: {d}");
    }
    for p in targeted(&m) {
        p.unmerge().unwrap();
    }
    // (W + sBA) − sBA is not W in f32: unmerge is exact only to rounding.
    let (mut changed, mut worst) = (0, 0.0f64);
    for (p, w) in targeted(&m).iter().zip(&w0) {
        let got = bits(&p.base().weight);
        changed += got.iter().zip(w).filter(|(a, b)| a != b).count();
        let d = max_diff(
            &p.base().weight,
            &Tensor::from_vec(
                w.iter().map(|&b| f32::from_bits(b)).collect(),
                p.base().weight.dims().to_vec(),
            )
            .unwrap(),
        );
        worst = worst.max(d);
    }
    eprintln!(
        "unmerge: {changed} base weight elements differ from before merge, max|d| {worst:.3e}"
    );
    assert!(worst <= 1e-6, "unmerged W: {worst}");
    let y2 = inp.run(&m);
    for ((n, a), (_, b)) in outs(&y0).into_iter().zip(outs(&y2)) {
        assert!(
            max_diff(a, b) <= 1e-5 * max_abs(a).max(1.0),
            "{n} after unmerge"
        );
    }
}

#[test]
fn target_matching_nothing_is_peft_error() {
    let (cfg, sd, _) = pad5();
    let mut c = lora();
    c.targets = TargetModules::Regex(r"model\.decoder\.layers\.\d+\.nothing".into());
    let e = GroundingDino::from_state_dict_lora(&cfg, &sd, "pad5", Some((c, 3)))
        .err()
        .expect("no target matches")
        .to_string();
    assert!(
        e.contains(
            r"Target modules model\.decoder\.layers\.\d+\.nothing not found in the base model"
        ),
        "{e}"
    );
    let mut c = lora();
    c.targets = TargetModules::Names(vec!["qkv".into()]);
    let e = GroundingDino::from_state_dict_lora(&cfg, &sd, "pad5", Some((c, 3)))
        .err()
        .expect("no target matches")
        .to_string();
    assert!(e.contains("[\"qkv\"] not found in the base model"), "{e}");
}

/// PEFT loads an adapter we saved onto transformers' GroundingDinoForObjectDetection and
/// gives our outputs (tools/reference/gd_peft_check.py, tolerance 1e-4). Needs a Python
/// with torch, transformers and peft in EDGEDISTILL_PEFT_PYTHON; skipped without one.
#[test]
fn peft_loads_our_adapter() {
    let Ok(py) = std::env::var("EDGEDISTILL_PEFT_PYTHON") else {
        eprintln!("SKIP: set EDGEDISTILL_PEFT_PYTHON to a Python with torch, transformers, peft");
        return;
    };
    let dir = tmp("gd-peft");
    std::fs::create_dir_all(&dir).unwrap();
    let (cfg, sd, fx) = pad5();
    let c = lora();
    let (model, names) =
        GroundingDino::from_state_dict_lora(&cfg, &sd, "pad5", Some((c.clone(), 3))).unwrap();
    randomize_b(&model, 4);
    let adapter = dir.join("adapter");
    edgedistill::io::save_adapter(
        &adapter,
        &c,
        &model,
        "GroundingDinoForObjectDetection",
        "transformers.models.grounding_dino.modeling_grounding_dino",
    )
    .unwrap();
    // The files look like PEFT's own save_pretrained output.
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["peft_type"], "LORA");
    assert_eq!(v["target_modules"], TARGETS);
    assert_eq!(v["r"], 16);
    assert_eq!(v["lora_alpha"], 32);
    assert_eq!(v["lora_dropout"], 0.1);
    assert!(v["base_model_name_or_path"].is_null() && v["task_type"].is_null());
    assert_eq!(
        v["auto_mapping"]["base_model_class"],
        "GroundingDinoForObjectDetection"
    );
    let keys: Vec<String> = StateDict::open(adapter.join("adapter_model.safetensors"))
        .unwrap()
        .names()
        .map(str::to_string)
        .collect();
    let mut want: Vec<String> = names
        .iter()
        .flat_map(|m| ["lora_A", "lora_B"].map(|ab| format!("base_model.model.{m}.{ab}.weight")))
        .collect();
    let mut got = keys.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(keys.contains(
        &"base_model.model.model.decoder.layers.0.self_attn.query.lora_A.weight".to_string()
    ));

    let base: Vec<(String, Tensor)> = state_dict_of(&model)
        .into_iter()
        .filter(|(n, _)| !n.contains("lora_"))
        .collect();
    edgedistill::io::save_safetensors(dir.join("model.safetensors"), &base, None).unwrap();
    std::fs::write(dir.join("config.json"), fx.config().unwrap().to_string()).unwrap();
    let inp = In::of(&fx);
    let out = inp.run(&model);
    let inputs: Vec<(String, Tensor)> = [
        ("pixel_values", &inp.pixel_values),
        ("pixel_mask", &inp.pixel_mask),
        ("input_ids", &inp.input_ids),
        ("attention_mask", &inp.attention_mask),
        ("token_type_ids", &inp.token_type_ids),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t.clone()))
    .collect();
    edgedistill::io::save_safetensors(dir.join("inputs.safetensors"), &inputs, None).unwrap();
    let outputs: Vec<(String, Tensor)> = outs(&out)
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    edgedistill::io::save_safetensors(dir.join("outputs.safetensors"), &outputs, None).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/reference/gd_peft_check.py");
    let arg = |f: &str| dir.join(f).display().to_string();
    let res = std::process::Command::new(py)
        .arg(script)
        .args(["--weights", &arg("model.safetensors")])
        .args(["--config", &arg("config.json")])
        .args(["--adapter", &arg("adapter")])
        .args(["--inputs", &arg("inputs.safetensors")])
        .args(["--outputs", &arg("outputs.safetensors")])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    eprintln!("{text}");
    assert!(res.status.success(), "PEFT check failed:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
