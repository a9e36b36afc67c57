//! LoRA in PEFT's format: target matching (regex and names), configs, LoraPlan, merge and
//! dropout, save/load/apply of adapters, and parity with an adapter PEFT 0.21.2 saved
//! (tests/fixtures/peft-tiny, made by tools/reference/lora_peft_roundtrip.py make).
//!
//! With EDGEDISTILL_PEFT_EXPORT=DIR, `save_load_apply_round_trip` also leaves its adapters
//! in DIR/{regex,names} (plus rust_io.safetensors) for
//! `lora_peft_roundtrip.py check DIR/regex tests/fixtures/peft-tiny/reference.safetensors`.
mod common;
use common::*;
use edgedistill::io::regex::Regex;
use edgedistill::io::{
    Adapter, Safetensors, StateDict, apply_adapter, load_adapter, save_adapter, save_safetensors,
};
use edgedistill::nn::{
    Forward, Linear, LoraConfig, LoraLinear, LoraPlan, Module, ParamCount, Proj, TargetModules,
    load_state_dict, mark_only_lora_trainable, proj,
};
use edgedistill::tensor::Rng;
use edgedistill::{Result, Tensor};
use serde_json::json;
use std::path::{Path, PathBuf};

const TARGETS: &str = r".*mask_decoder.*\.(q_proj|k_proj|v_proj|out_proj)";
const D: usize = 8;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft-tiny")
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgedistill-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

struct Attn {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    out_proj: Proj,
}

/// tools/reference/lora_peft_roundtrip.py's `Tiny`, name for name.
struct Tiny {
    enc_proj: Proj,
    enc_q: Proj,
    layers: Vec<Attn>,
    head: Proj,
}

impl Tiny {
    fn new(mut plan: Option<&mut LoraPlan>, seed: u64) -> Result<Tiny> {
        let mut rng = Rng::new(seed);
        let mut lin = |i, o| Linear::new(i, o, true, &mut rng);
        let enc_proj = proj(plan.as_deref_mut(), "image_encoder.proj", lin(6, D)?)?;
        let enc_q = proj(plan.as_deref_mut(), "image_encoder.q_proj", lin(D, D)?)?;
        let mut layers = Vec::new();
        for i in 0..2 {
            let mut p = |n: &str| {
                let name = format!("mask_decoder.layers.{i}.self_attn.{n}");
                proj(plan.as_deref_mut(), &name, lin(D, D)?)
            };
            layers.push(Attn {
                q_proj: p("q_proj")?,
                k_proj: p("k_proj")?,
                v_proj: p("v_proj")?,
                out_proj: p("out_proj")?,
            });
        }
        let head = proj(plan, "mask_decoder.head", lin(D, 4)?)?;
        Ok(Tiny {
            enc_proj,
            enc_q,
            layers,
            head,
        })
    }
    /// With the base weights of the PEFT fixture and the adapters `cfg` asks for.
    fn from_fixture(cfg: &LoraConfig, seed: u64) -> Tiny {
        let mut plan = LoraPlan::new(cfg.clone(), seed);
        let m = Tiny::new(Some(&mut plan), seed).unwrap();
        plan.finish().unwrap();
        mark_only_lora_trainable(&m).unwrap();
        let sd = StateDict::open(fixture_dir().join("reference.safetensors")).unwrap();
        let rep = load_state_dict(&m, &sd.strip_prefix("base."), false).unwrap();
        assert!(rep.unexpected.is_empty(), "{:?}", rep.unexpected);
        assert!(
            rep.missing.iter().all(|n| n.contains(".lora_")),
            "{:?}",
            rep.missing
        );
        m
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.enc_q.forward(&self.enc_proj.forward(x)?.relu()?)?;
        for a in &self.layers {
            let q = a.q_proj.forward(&h)?;
            let k = a.k_proj.forward(&h)?;
            let v = a.v_proj.forward(&h)?;
            h = h.add(&a.out_proj.forward(&q.mul(&k)?.add(&v)?)?)?;
        }
        self.head.forward(&h)
    }
    fn projs(&self) -> Vec<&Proj> {
        let mut v = vec![&self.enc_proj, &self.enc_q, &self.head];
        for a in &self.layers {
            v.extend([&a.q_proj, &a.k_proj, &a.v_proj, &a.out_proj]);
        }
        v
    }
}

impl Module for Attn {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("q_proj", &self.q_proj);
        f("k_proj", &self.k_proj);
        f("v_proj", &self.v_proj);
        f("out_proj", &self.out_proj);
    }
}

impl Module for Tiny {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("image_encoder.proj", &self.enc_proj);
        f("image_encoder.q_proj", &self.enc_q);
        for (i, a) in self.layers.iter().enumerate() {
            f(&format!("mask_decoder.layers.{i}.self_attn"), a);
        }
        f("mask_decoder.head", &self.head);
    }
}

fn regex_cfg() -> LoraConfig {
    LoraConfig::new(4, 8.0, 0.0, TargetModules::Regex(TARGETS.into()))
}

/// B = 0 after init; give every adapter a visible effect.
fn randomize_b(m: &dyn Module, seed: u64) {
    let _g = edgedistill::no_grad();
    for (i, (n, t)) in m.named_parameters().into_iter().enumerate() {
        if n.ends_with("lora_B.weight") {
            t.assign(&randn(t.dims(), seed + i as u64).mul_scalar(0.3).unwrap())
                .unwrap();
        }
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    vals(a)
        .iter()
        .zip(vals(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn regex_fullmatch_cases() {
    let re = Regex::new(TARGETS).unwrap();
    for (s, want) in [
        ("mask_decoder.transformer.layers.0.self_attn.q_proj", true),
        (
            "mask_decoder.transformer.layers.1.cross_attn_token_to_image.v_proj",
            true,
        ),
        (
            "mask_decoder.transformer.final_attn_token_to_image.out_proj",
            true,
        ),
        ("sam.mask_decoder.x.k_proj", true),
        (
            "mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A",
            false,
        ),
        ("vision_encoder.layers.0.attn.qkv", false),
        ("mask_decoder.q_proj_x", false),
        ("mask_decoderq_proj", false),
    ] {
        assert_eq!(re.full_match(s), want, "{s}");
    }
    let re = Regex::new(r"vision_encoder\.layers\.\d+\.attn\.(qkv|proj)").unwrap();
    assert!(re.full_match("vision_encoder.layers.31.attn.qkv"));
    assert!(!re.full_match("vision_encoder.layers.x.attn.qkv"));
    assert!(
        Regex::new(r"[a-z_]+\.(?:\w+\.){2,3}fc[12]")
            .unwrap()
            .full_match("mlp.a.b.c.fc2")
    );
    let e = Regex::new(r".*(?<=x)q").unwrap_err().to_string();
    assert!(e.contains(".*(?<=x)q") && e.contains("position 2"), "{e}");
}

#[test]
fn target_matching_regex_and_names() {
    let t = TargetModules::Regex(TARGETS.into());
    assert!(t.matches("mask_decoder.layers.0.self_attn.q_proj").unwrap());
    assert!(!t.matches("image_encoder.q_proj").unwrap());
    // A list matches the whole name or a dotted suffix, never a bare substring.
    let t = TargetModules::Names(vec!["q_proj".into(), "self_attn.v_proj".into()]);
    for (name, want) in [
        ("q_proj", true),
        ("image_encoder.q_proj", true),
        ("a.b.self_attn.v_proj", true),
        ("v_proj", false),
        ("a.cross_attn.v_proj", false),
        ("a.xq_proj", false),
        ("a.q_proj.lora_A", false),
    ] {
        assert_eq!(t.matches(name).unwrap(), want, "{name}");
    }
    let e = TargetModules::Regex("(q".into()).matches("q").unwrap_err();
    assert!(e.to_string().contains("\"(q\""), "{e}");
}

#[test]
fn config_json_round_trip_and_patterns() {
    let mut cfg = LoraConfig::new(4, 8.0, 0.1, TargetModules::Names(vec!["q_proj".into()]));
    cfg.rank_pattern.insert("out_proj".into(), 2);
    cfg.alpha_pattern.insert(r"layers\.1\..*".into(), 3.5);
    let v = cfg.to_peft_json("Tiny", "__main__");
    assert_eq!(v["peft_type"], "LORA");
    assert_eq!(v["lora_alpha"], json!(8));
    assert_eq!(v["auto_mapping"]["base_model_class"], "Tiny");
    assert_eq!(LoraConfig::from_peft_json(&v, "x").unwrap(), cfg);
    // PEFT: (.*\.)?(key)$ must match the whole name; alpha/r per module.
    assert_eq!(cfg.rank_for("a.out_proj").unwrap(), 2);
    assert_eq!(cfg.rank_for("a.xout_proj").unwrap(), 4);
    assert_eq!(cfg.scale_for("m.layers.0.q_proj").unwrap(), 2.0);
    assert_eq!(cfg.scale_for("m.layers.1.q_proj").unwrap(), 3.5 / 4.0);
    assert_eq!(cfg.scale_for("m.layers.1.out_proj").unwrap(), 3.5 / 2.0);
    cfg.use_rslora = true;
    assert_eq!(cfg.scale_for("m.layers.0.q_proj").unwrap(), 8.0 / 2.0);
    // Two keys with different values for one module: PEFT's answer depends on key order.
    cfg.rank_pattern.insert("layers.0.out_proj".into(), 3);
    let e = cfg.rank_for("m.layers.0.out_proj").unwrap_err().to_string();
    assert!(e.contains("out_proj") && e.contains("both match"), "{e}");
    // The fixture PEFT wrote.
    let text = std::fs::read_to_string(fixture_dir().join("adapter_config.json")).unwrap();
    let f = LoraConfig::from_peft_json(&serde_json::from_str(&text).unwrap(), "f").unwrap();
    assert_eq!(
        (f.r, f.alpha, f.dropout, &f.targets),
        (4, 8.0, 0.05, &TargetModules::Regex(TARGETS.into()))
    );
}

#[test]
fn bad_adapter_configs_are_refused_by_field() {
    let good = regex_cfg().to_peft_json("Tiny", "__main__");
    for (field, value, says) in [
        ("peft_type", json!("IA3"), "LORA"),
        ("use_dora", json!(true), "not supported"),
        ("bias", json!("all"), "bias"),
        ("fan_in_fan_out", json!(true), "not supported"),
        ("layers_to_transform", json!([0, 1]), "not supported"),
        ("modules_to_save", json!(["head"]), "not supported"),
        ("target_modules", json!(null), "name the modules"),
        ("target_modules", json!("all-linear"), "all-linear"),
        ("target_modules", json!("(q"), "position"),
        ("r", json!(0), "r"),
        ("r", json!(4.5), "integer"),
        ("lora_dropout", json!(1.0), "lora_dropout"),
    ] {
        let mut v = good.clone();
        v[field] = value.clone();
        let e = LoraConfig::from_peft_json(&v, "dir/adapter_config.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dir/adapter_config.json") && e.contains(says),
            "{field}={value}: {e}"
        );
        if field != "bias" && field != "r" && field != "lora_dropout" {
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}

#[test]
fn plan_wraps_matches_and_errors_when_none_match() {
    let mut plan = LoraPlan::new(regex_cfg(), 1);
    let m = Tiny::new(Some(&mut plan), 1).unwrap();
    assert_eq!(plan.seen().len(), 11);
    let matched = plan.finish().unwrap();
    assert_eq!(matched.len(), 8);
    assert!(
        matched
            .iter()
            .all(|n| n.starts_with("mask_decoder.layers."))
    );
    assert!(m.enc_q.as_lora().is_none() && m.head.as_lora().is_none());
    let l = m.layers[1].v_proj.as_lora().unwrap();
    assert_eq!((l.rank(), l.scale), (4, 2.0));
    // 8 adapters × (4·8 + 8·4) = 512 LoRA parameters.
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"mask_decoder.layers.0.self_attn.q_proj.lora_A.weight".into()));
    assert!(names.contains(&"mask_decoder.layers.0.self_attn.q_proj.weight".into()));
    // The wrapped bases are frozen; PEFT also freezes the rest of the model.
    assert_eq!(ParamCount::of(&m).trainable, 512 + 164);
    assert_eq!(mark_only_lora_trainable(&m).unwrap(), 16);
    assert_eq!(ParamCount::of(&m).trainable, 512);

    let cfg = LoraConfig::new(4, 8.0, 0.0, TargetModules::Names(vec!["qkv".into()]));
    let mut plan = LoraPlan::new(cfg, 1);
    Tiny::new(Some(&mut plan), 1).unwrap();
    let e = plan.finish().unwrap_err().to_string();
    assert!(
        e.contains("[\"qkv\"] not found in the base model") && e.contains("image_encoder.proj"),
        "{e}"
    );
    let mut cfg = regex_cfg();
    cfg.bias = "lora_only".into();
    let e = Tiny::new(Some(&mut LoraPlan::new(cfg, 1)), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("lora_only"), "{e}");
    // Without a plan every projection stays plain.
    let m = Tiny::new(None, 1).unwrap();
    assert!(m.projs().iter().all(|p| p.as_lora().is_none()));
}

#[test]
fn merge_matches_unmerged_and_unmerge_restores() {
    let m = Tiny::from_fixture(&regex_cfg(), 3);
    randomize_b(&m, 30);
    let x = randn(&[3, 5, 6], 4);
    let y0 = m.forward(&x).unwrap();
    let w0: Vec<Vec<f64>> = m.projs().iter().map(|p| vals(&p.base().weight)).collect();
    for p in m.projs() {
        p.merge().unwrap();
    }
    let l = m.layers[0].q_proj.as_lora().unwrap();
    assert!(l.is_merged());
    let y1 = m.forward(&x).unwrap();
    assert!(max_diff(&y0, &y1) < 1e-5, "merged {}", max_diff(&y0, &y1));
    assert!(
        max_diff(
            &l.base.weight,
            &Tensor::from_vec(w0[3].clone(), [D, D]).unwrap()
        ) > 1e-3
    );
    let e = l.merge().unwrap_err().to_string();
    assert!(e.contains("already merged"), "{e}");
    for p in m.projs() {
        p.unmerge().unwrap();
    }
    for (p, w) in m.projs().iter().zip(&w0) {
        assert_close(&vals(&p.base().weight), w, 1e-6, 0.0, "unmerged W");
    }
    let e = l.unmerge().unwrap_err().to_string();
    assert!(e.contains("not merged"), "{e}");
    assert!(max_diff(&y0, &m.forward(&x).unwrap()) < 1e-6);
}

#[test]
fn dropout_only_in_training_and_follows_set_training() {
    let mut cfg = regex_cfg();
    cfg.dropout = 0.5;
    let m = Tiny::from_fixture(&cfg, 5);
    randomize_b(&m, 50);
    let x = randn(&[2, 5, 6], 6);
    m.eval();
    let e1 = vals(&m.forward(&x).unwrap());
    assert_eq!(e1, vals(&m.forward(&x).unwrap()));
    // Eval equals the dropout-free model with the same weights.
    let plain = Tiny::from_fixture(&regex_cfg(), 5);
    randomize_b(&plain, 50);
    for ((_, a), (_, b)) in m.named_parameters().iter().zip(plain.named_parameters()) {
        b.assign(a).unwrap();
    }
    assert_eq!(e1, vals(&plain.forward(&x).unwrap()));
    m.train();
    let t1 = m.forward(&x).unwrap();
    let t2 = vals(&m.forward(&x).unwrap());
    assert!(
        vals(&t1) != e1 && vals(&t1) != t2,
        "dropout changes training outputs"
    );
    // The dropout path is differentiable into A and B, not the frozen base.
    t1.sum_all().unwrap().backward().unwrap();
    let l = m.layers[0].k_proj.as_lora().unwrap();
    assert!(l.lora_a.grad().is_some() && l.lora_b.grad().is_some());
    assert!(l.base.weight.grad().is_none());
    assert_eq!(l.dropout_p(), 0.5);
    m.eval();
    assert_eq!(e1, vals(&m.forward(&x).unwrap()));
}

#[test]
fn lora_linear_with_config_scale_and_dropout() {
    let mut rng = Rng::new(9);
    let base = Linear::new(5, 3, false, &mut rng).unwrap();
    let l = LoraLinear::with_config(base, 2, 0.7, 0.0, &mut rng).unwrap();
    assert_eq!((l.rank(), l.scale, l.dropout_p()), (2, 0.7, 0.0));
    assert!(
        LoraLinear::with_config(
            Linear::new(5, 3, false, &mut rng).unwrap(),
            0,
            1.0,
            0.0,
            &mut rng
        )
        .is_err()
    );
    assert!(
        LoraLinear::with_config(
            Linear::new(5, 3, false, &mut rng).unwrap(),
            2,
            1.0,
            1.5,
            &mut rng
        )
        .is_err()
    );
}

fn save_and_check(cfg: &LoraConfig, tag: &str, export: Option<&Path>) {
    let dir = match export {
        Some(d) => d.join(tag),
        None => temp_dir(&format!("lora-{tag}")),
    };
    let m = Tiny::from_fixture(cfg, 11);
    randomize_b(&m, 110);
    m.eval();
    save_adapter(&dir, cfg, &m, "Tiny", "__main__").unwrap();
    let st = Safetensors::open(dir.join("adapter_model.safetensors")).unwrap();
    assert!(
        st.names()
            .iter()
            .all(|k| k.starts_with("base_model.model.mask_decoder.layers.")
                || cfg.targets != regex_cfg().targets)
    );
    assert_eq!(st.metadata().get("format").map(String::as_str), Some("pt"));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let a = load_adapter(&dir).unwrap();
    assert_eq!(&a.config, cfg);
    let fresh = Tiny::from_fixture(&a.config, 12);
    fresh.eval();
    let x = Tensor::randn([2, 5, 6], 0.0, 1.0, &mut Rng::new(13));
    let (y, y_fresh) = (m.forward(&x).unwrap(), fresh.forward(&x).unwrap());
    assert!(
        max_diff(&y, &y_fresh) > 1e-3,
        "fresh model differs before apply"
    );
    assert_eq!(apply_adapter(&fresh, &a).unwrap(), st.len());
    assert_eq!(vals(&y), vals(&fresh.forward(&x).unwrap()), "{tag}");
    if export.is_some() {
        let io = [("input".to_string(), x), ("output".to_string(), y)];
        save_safetensors(dir.join("rust_io.safetensors"), &io, None).unwrap();
        eprintln!("exported {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn save_load_apply_round_trip() {
    let export = std::env::var_os("EDGEDISTILL_PEFT_EXPORT").map(PathBuf::from);
    let mut cfg = regex_cfg();
    cfg.dropout = 0.1;
    save_and_check(&cfg, "regex", export.as_deref());
    // Names, per-module rank and alpha, rsLoRA: PEFT must read these the same way.
    let mut cfg = LoraConfig::new(
        4,
        8.0,
        0.0,
        TargetModules::Names(vec!["q_proj".into(), "v_proj".into(), "out_proj".into()]),
    );
    cfg.use_rslora = true;
    cfg.rank_pattern.insert("out_proj".into(), 2);
    cfg.alpha_pattern
        .insert("layers.1.self_attn.v_proj".into(), 16.0);
    save_and_check(&cfg, "names", export.as_deref());
}

/// An adapter of `m`'s own LoRA tensors under PEFT keys, plus `extra`.
fn adapter_of(m: &dyn Module, cfg: &LoraConfig, extra: &[(&str, Tensor)]) -> Result<Adapter> {
    let mut sd = StateDict::new();
    for (n, t) in m.named_parameters() {
        if n.contains(".lora_") {
            sd.insert(format!("base_model.model.{n}"), t.detach());
        }
    }
    for (k, t) in extra {
        sd.insert(format!("base_model.model.{k}"), t.clone());
    }
    Adapter::from_parts(&cfg.to_peft_json("Tiny", "__main__"), sd, "mem-adapter")
}

#[test]
fn adapter_mismatches_name_the_key() {
    let cfg = regex_cfg();
    let m = Tiny::from_fixture(&cfg, 21);
    assert_eq!(
        apply_adapter(&m, &adapter_of(&m, &cfg, &[]).unwrap()).unwrap(),
        16
    );
    // A key outside the config's targets: refused when the adapter is built.
    let k = "image_encoder.q_proj.lora_A.weight";
    let e = adapter_of(&m, &cfg, &[(k, randn(&[4, 8], 1))])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(k) && e.contains("mem-adapter"), "{e}");
    // A targeted module the model does not have: refused by apply, naming the key.
    let (ka, kb) = (
        "mask_decoder.layers.7.self_attn.q_proj.lora_A.weight",
        "mask_decoder.layers.7.self_attn.q_proj.lora_B.weight",
    );
    let a = adapter_of(
        &m,
        &cfg,
        &[(ka, randn(&[4, 8], 1)), (kb, randn(&[8, 4], 2))],
    )
    .unwrap();
    let e = apply_adapter(&m, &a).unwrap_err().to_string();
    assert!(e.contains(ka) && e.contains("not a LoRA layer"), "{e}");
    // Wrong rank for the config, and wrong shape for the model.
    let k = "mask_decoder.layers.0.self_attn.q_proj.lora_A.weight";
    let e = adapter_of(&m, &cfg, &[(k, randn(&[3, 8], 1))])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("q_proj") && e.contains("r=4"), "{e}");
    let a = adapter_of(&m, &cfg, &[(k, randn(&[4, 9], 1))]).unwrap();
    let e = apply_adapter(&m, &a).unwrap_err().to_string();
    assert!(
        e.contains(k) && e.contains("[4, 9]") && e.contains("[4, 8]"),
        "{e}"
    );
    // A model LoRA layer the adapter lacks, and the untouched model after a failure.
    let cfg_q = LoraConfig::new(4, 8.0, 0.0, TargetModules::Names(vec!["q_proj".into()]));
    let mq = Tiny::from_fixture(&cfg_q, 22);
    let mut sd = StateDict::new();
    for (n, t) in mq.named_parameters() {
        if n.contains(".lora_") && !n.contains("layers.1.") {
            sd.insert(format!("base_model.model.{n}"), t.detach());
        }
    }
    let a = Adapter::from_parts(&cfg_q.to_peft_json("T", "m"), sd, "mem").unwrap();
    let e = apply_adapter(&mq, &a).unwrap_err().to_string();
    assert!(
        e.contains("mask_decoder.layers.1.self_attn.q_proj.lora_A.weight"),
        "{e}"
    );
    // Keys without PEFT's prefix or not LoRA tensors.
    let mut sd = StateDict::new();
    sd.insert(
        "mask_decoder.layers.0.self_attn.q_proj.lora_A.weight",
        randn(&[4, 8], 1),
    );
    let e = Adapter::from_parts(&cfg.to_peft_json("T", "m"), sd, "o")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("base_model.model."), "{e}");
    let mut sd = StateDict::new();
    sd.insert(
        "base_model.model.mask_decoder.layers.0.self_attn.q_proj.lora_magnitude_vector",
        randn(&[8], 1),
    );
    let e = Adapter::from_parts(&cfg.to_peft_json("T", "m"), sd, "o")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("lora_magnitude_vector"), "{e}");
}

#[test]
fn load_adapter_errors_name_the_file() {
    let dir = temp_dir("lora-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let e = load_adapter(&dir).err().unwrap().to_string();
    assert!(e.contains("adapter_config.json"), "{e}");
    std::fs::write(dir.join("adapter_config.json"), "{\"peft_type\": ").unwrap();
    let e = load_adapter(&dir).err().unwrap().to_string();
    assert!(
        e.contains("adapter_config.json") && e.contains("JSON"),
        "{e}"
    );
    let mut v = regex_cfg().to_peft_json("T", "m");
    v["peft_type"] = json!("IA3");
    std::fs::write(dir.join("adapter_config.json"), v.to_string()).unwrap();
    let e = load_adapter(&dir).err().unwrap().to_string();
    assert!(
        e.contains("adapter_config.json") && e.contains("IA3"),
        "{e}"
    );
    std::fs::write(
        dir.join("adapter_config.json"),
        regex_cfg().to_peft_json("T", "m").to_string(),
    )
    .unwrap();
    let e = load_adapter(&dir).err().unwrap().to_string();
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn peft_saved_adapter_matches_peft_outputs() {
    let a = load_adapter(fixture_dir()).unwrap();
    assert_eq!(a.modules().len(), 8);
    let m = Tiny::from_fixture(&a.config, 0);
    m.eval();
    let st = Safetensors::open(fixture_dir().join("reference.safetensors")).unwrap();
    let x = st.tensor("input").unwrap();
    // B = 0 after init: the base model's output.
    let d0 = max_diff(&m.forward(&x).unwrap(), &st.tensor("output_base").unwrap());
    assert!(d0 < 1e-5, "base {d0}");
    assert_eq!(apply_adapter(&m, &a).unwrap(), 16);
    let d = max_diff(&m.forward(&x).unwrap(), &st.tensor("output").unwrap());
    assert!(d < 1e-5, "PEFT parity {d}");
    for p in m.projs() {
        p.merge().unwrap();
    }
    let dm = max_diff(&m.forward(&x).unwrap(), &st.tensor("output").unwrap());
    assert!(dm < 1e-5, "merged PEFT parity {dm}");
    eprintln!("PEFT fixture max |Δ|: base {d0:.2e}, adapter {d:.2e}, merged {dm:.2e}");
    // print_trainable_parameters, as PEFT printed it for this model.
    assert_eq!(
        Some(&ParamCount::of(&m).to_string()),
        st.metadata().get("trainable")
    );
}
