//! The parameter layout: every tensor's name, shape and offset in one flat
//! buffer. The optimiser, the gradients and the checkpoints all share it.
//!
//! Names follow the Hugging Face GPT-2 layout (`wte`, `wpe`, `h.{l}.ln_1`,
//! `h.{l}.attn.c_attn`, `h.{l}.mlp.c_fc`, `ln_f`, ...), with matrices stored
//! `[in, out]` as GPT-2's Conv1D does. Placements that GPT-2 lacks add
//! `h.{l}.ln_attn_out`, `h.{l}.ln_mlp_out` (Peri-LN), `ln_emb` and
//! `lm_head.bias`. For Post-LN, `ln_1` and `ln_2` are the norms after the
//! attention and MLP residual additions.

use crate::config::{ModelConfig, Placement};

/// What kind of parameter a tensor is, which decides its weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    Matrix,
    Embedding,
    Bias,
    LnGain,
    LnBias,
}

/// Part of the network a tensor belongs to, for per-block gradient norms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Embedding,
    Attention,
    Mlp,
    LayerNorm,
    Head,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
    pub group: Group,
    /// The block this tensor belongs to, or `None` outside the blocks.
    pub block: Option<usize>,
    /// Start of the tensor in the flat buffer, in elements.
    pub offset: usize,
}

impl TensorSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Tensor indices of one LayerNorm's gain γ and shift β.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LnIds {
    pub weight: usize,
    pub bias: usize,
}

/// Tensor indices of one block's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockIds {
    /// LN_a: in front of attention (Pre, Peri) or after its residual add (Post).
    pub ln_1: Option<LnIds>,
    /// LN_ao: on the attention output (Peri only).
    pub ln_attn_out: Option<LnIds>,
    pub c_attn_weight: usize,
    pub c_attn_bias: usize,
    pub attn_proj_weight: usize,
    pub attn_proj_bias: usize,
    /// LN_m: in front of the MLP (Pre, Peri) or after its residual add (Post).
    pub ln_2: Option<LnIds>,
    /// LN_mo: on the MLP output (Peri only).
    pub ln_mlp_out: Option<LnIds>,
    pub c_fc_weight: usize,
    pub c_fc_bias: usize,
    pub mlp_proj_weight: usize,
    pub mlp_proj_bias: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub tensors: Vec<TensorSpec>,
    /// Total number of parameters.
    pub total: usize,
    pub wte: usize,
    pub wpe: usize,
    pub ln_emb: Option<LnIds>,
    pub blocks: Vec<BlockIds>,
    pub ln_f: Option<LnIds>,
    /// `lm_head.weight` [V, d]; `None` when the head is tied to `wte`.
    pub lm_head_weight: Option<usize>,
    pub lm_head_bias: Option<usize>,
}

struct Builder {
    tensors: Vec<TensorSpec>,
    offset: usize,
}

impl Builder {
    fn add(&mut self, name: String, shape: &[usize], kind: TensorKind, group: Group, block: Option<usize>) -> usize {
        let spec = TensorSpec { name, shape: shape.to_vec(), kind, group, block, offset: self.offset };
        self.offset += spec.len();
        self.tensors.push(spec);
        self.tensors.len() - 1
    }

    fn layernorm(&mut self, prefix: &str, d: usize, block: Option<usize>) -> LnIds {
        LnIds {
            weight: self.add(format!("{prefix}.weight"), &[d], TensorKind::LnGain, Group::LayerNorm, block),
            bias: self.add(format!("{prefix}.bias"), &[d], TensorKind::LnBias, Group::LayerNorm, block),
        }
    }
}

impl Layout {
    /// Lay out the tensors of a validated configuration.
    pub fn new(config: &ModelConfig) -> Layout {
        let (d, v, t) = (config.width, config.vocab, config.context);
        let hidden = config.hidden();
        let placement = config.placement;
        let mut b = Builder { tensors: Vec::new(), offset: 0 };

        let wte = b.add("wte.weight".into(), &[v, d], TensorKind::Embedding, Group::Embedding, None);
        let wpe = b.add("wpe.weight".into(), &[t, d], TensorKind::Embedding, Group::Embedding, None);
        let ln_emb = config.embedding_ln.then(|| b.layernorm("ln_emb", d, None));

        let has_ln = placement != Placement::None;
        let is_peri = placement == Placement::Peri;
        let mut blocks = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let p = format!("h.{l}");
            let blk = Some(l);
            let ln_1 = has_ln.then(|| b.layernorm(&format!("{p}.ln_1"), d, blk));
            let c_attn_weight = b.add(format!("{p}.attn.c_attn.weight"), &[d, 3 * d], TensorKind::Matrix, Group::Attention, blk);
            let c_attn_bias = b.add(format!("{p}.attn.c_attn.bias"), &[3 * d], TensorKind::Bias, Group::Attention, blk);
            let attn_proj_weight = b.add(format!("{p}.attn.c_proj.weight"), &[d, d], TensorKind::Matrix, Group::Attention, blk);
            let attn_proj_bias = b.add(format!("{p}.attn.c_proj.bias"), &[d], TensorKind::Bias, Group::Attention, blk);
            let ln_attn_out = is_peri.then(|| b.layernorm(&format!("{p}.ln_attn_out"), d, blk));
            let ln_2 = has_ln.then(|| b.layernorm(&format!("{p}.ln_2"), d, blk));
            let c_fc_weight = b.add(format!("{p}.mlp.c_fc.weight"), &[d, hidden], TensorKind::Matrix, Group::Mlp, blk);
            let c_fc_bias = b.add(format!("{p}.mlp.c_fc.bias"), &[hidden], TensorKind::Bias, Group::Mlp, blk);
            let mlp_proj_weight = b.add(format!("{p}.mlp.c_proj.weight"), &[hidden, d], TensorKind::Matrix, Group::Mlp, blk);
            let mlp_proj_bias = b.add(format!("{p}.mlp.c_proj.bias"), &[d], TensorKind::Bias, Group::Mlp, blk);
            let ln_mlp_out = is_peri.then(|| b.layernorm(&format!("{p}.ln_mlp_out"), d, blk));
            blocks.push(BlockIds {
                ln_1, ln_attn_out, c_attn_weight, c_attn_bias, attn_proj_weight, attn_proj_bias,
                ln_2, ln_mlp_out, c_fc_weight, c_fc_bias, mlp_proj_weight, mlp_proj_bias,
            });
        }

        let ln_f = placement.has_final_ln().then(|| b.layernorm("ln_f", d, None));
        let lm_head_weight =
            (!config.tied_head).then(|| b.add("lm_head.weight".into(), &[v, d], TensorKind::Matrix, Group::Head, None));
        let lm_head_bias = config.head_bias.then(|| b.add("lm_head.bias".into(), &[v], TensorKind::Bias, Group::Head, None));

        Layout { total: b.offset, tensors: b.tensors, wte, wpe, ln_emb, blocks, ln_f, lm_head_weight, lm_head_bias }
    }

    /// The head matrix `W_U` [V, d]: `lm_head.weight`, or `wte` when tied.
    pub fn head_weight(&self) -> usize {
        self.lm_head_weight.unwrap_or(self.wte)
    }

    pub fn get<'a, F>(&self, data: &'a [F], id: usize) -> &'a [F] {
        &data[self.tensors[id].range()]
    }

    pub fn get_mut<'a, F>(&self, data: &'a mut [F], id: usize) -> &'a mut [F] {
        &mut data[self.tensors[id].range()]
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }
}
