//! A projection that is a plain Linear or a LoraLinear, decided at build time by a
//! `LoraPlan` from the module's full dotted name, the way PEFT's `inject_adapter` decides.
use super::{Forward, Linear, LoraConfig, LoraLinear, Module};
use crate::io::regex::Regex;
use crate::tensor::Rng;
use crate::{Error, Result, ResultExt, Tensor};

pub enum Proj {
    Plain(Linear),
    Lora(LoraLinear),
}

impl Proj {
    pub fn as_lora(&self) -> Option<&LoraLinear> {
        match self {
            Proj::Lora(l) => Some(l),
            Proj::Plain(_) => None,
        }
    }
    /// The base linear (its weight holds the merged adapter while merged).
    pub fn base(&self) -> &Linear {
        match self {
            Proj::Plain(l) => l,
            Proj::Lora(l) => &l.base,
        }
    }
    /// Merge the adapter into the base weight; a plain projection has nothing to merge.
    pub fn merge(&self) -> Result<()> {
        self.as_lora().map_or(Ok(()), LoraLinear::merge)
    }
    pub fn unmerge(&self) -> Result<()> {
        self.as_lora().map_or(Ok(()), LoraLinear::unmerge)
    }
}

impl Forward for Proj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Proj::Plain(l) => l.forward(x),
            Proj::Lora(l) => l.forward(x),
        }
    }
}

impl Module for Proj {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        match self {
            Proj::Plain(l) => l.visit_own_params(f),
            Proj::Lora(l) => l.visit_own_params(f),
        }
    }
    fn set_own_training(&self, training: bool) {
        if let Proj::Lora(l) = self {
            l.set_own_training(training);
        }
    }
}

/// Which linears of a model being built get adapters, with their rank, scale and init.
pub struct LoraPlan {
    cfg: LoraConfig,
    rng: Rng,
    regex: Option<Regex>,
    checked: bool,
    seen: Vec<String>,
    matched: Vec<String>,
}

impl LoraPlan {
    /// Adapters are initialised from `seed` in the order `wrap` meets them.
    pub fn new(cfg: LoraConfig, seed: u64) -> Self {
        LoraPlan {
            cfg,
            rng: Rng::new(seed),
            regex: None,
            checked: false,
            seen: Vec::new(),
            matched: Vec::new(),
        }
    }
    pub fn config(&self) -> &LoraConfig {
        &self.cfg
    }
    /// Every module name passed to `wrap`, in order.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }
    pub fn matched(&self) -> &[String] {
        &self.matched
    }

    fn targets(&mut self, name: &str) -> Result<bool> {
        if !self.checked {
            self.cfg.validate()?;
            if let super::TargetModules::Regex(p) = &self.cfg.targets {
                self.regex = Some(Regex::new(p)?);
            }
            self.checked = true;
        }
        match &self.regex {
            Some(re) => Ok(re.full_match(name)),
            None => self.cfg.targets.matches(name),
        }
    }

    /// `lin` as the module called `name` (full dotted name, as in the reference model):
    /// a LoraLinear with a frozen base when the config targets it, else unchanged.
    pub fn wrap(&mut self, name: &str, lin: Linear) -> Result<Proj> {
        self.seen.push(name.to_string());
        if !self.targets(name)? {
            return Ok(Proj::Plain(lin));
        }
        let r = self.cfg.rank_for(name)?;
        let scale = self.cfg.scale_for(name)?;
        let l = LoraLinear::with_config(lin, r, scale, self.cfg.dropout, &mut self.rng)
            .with_context(|| format!("LoRA on {name}"))?;
        self.matched.push(name.to_string());
        Ok(Proj::Lora(l))
    }

    /// The wrapped module names; none is PEFT's "Target modules ... not found" error.
    pub fn finish(self) -> Result<Vec<String>> {
        if self.matched.is_empty() {
            const SHOW: usize = 8;
            let mut some = self
                .seen
                .iter()
                .take(SHOW)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if self.seen.len() > SHOW {
                some.push_str(&format!(", ... ({} in all)", self.seen.len()));
            }
            return Err(Error::msg(format!(
                "Target modules {} not found in the base model. Please check the target modules \
                 and try again. Linear modules: [{some}]",
                self.cfg.targets
            )));
        }
        Ok(self.matched)
    }
}

/// PEFT's `_mark_only_adapters_as_trainable` (bias "none"): freeze every parameter but
/// the LoRA A and B matrices. Returns how many stay trainable.
pub fn mark_only_lora_trainable(m: &dyn Module) -> Result<usize> {
    let mut n = 0;
    for (name, t) in m.named_parameters() {
        let lora = name.ends_with("lora_A.weight") || name.ends_with("lora_B.weight");
        t.set_requires_grad(lora).with_context(|| name.clone())?;
        n += usize::from(lora);
    }
    Ok(n)
}

/// `plan.wrap(name, lin)`, or `lin` unchanged without a plan.
pub fn proj(plan: Option<&mut LoraPlan>, name: &str, lin: Linear) -> Result<Proj> {
    match plan {
        Some(p) => p.wrap(name, lin),
        None => Ok(Proj::Plain(lin)),
    }
}
