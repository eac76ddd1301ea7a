//! The short explanations next to the charts.

use leptos::prelude::*;

#[component]
pub fn Explanations() -> impl IntoView {
    view! {
        <section class="explain" aria-label="What the charts show">
            <h2>"What each placement computes"</h2>
            <p>"Each block is two residual half-steps, attention then MLP, written here for a branch f and step Δt:"</p>
            <ul>
                <li><strong>"Post-LN"</strong>": x ← LN(x + Δt·f(x)). Every state is a LayerNorm output, so its size is fixed; the original transformer, hard to train deep without warm-up."</li>
                <li><strong>"Pre-LN"</strong>": x ← x + Δt·f(LN(x)), with a final LN before the head. The stream itself is never normalised, so it can grow layer after layer (GPT-2's choice)."</li>
                <li><strong>"Peri-LN"</strong>": x ← x + Δt·LN(f(LN(x))). Each update is itself normalised, so no update can be larger than the LayerNorm allows."</li>
                <li><strong>"No LN"</strong>": x ← x + Δt·f(x). Nothing limits growth but the weights."</li>
            </ul>
            <h2>"The dashed line: a certified bound"</h2>
            <p>"Every LayerNorm output has norm at most r = sqrt(d)·max|γ| + ‖β‖, because the normalised vector has norm at most sqrt(d). From that and from norms of the current weights the lab computes, layer by layer, a bound on the largest token norm that holds for every input: Peri-LN adds at most Δt·r per half-step (linear in depth), Pre-LN adds at most Δt times a weight-dependent gain, Post-LN stays below r, and without LayerNorm the bound compounds exponentially. Mean |x| is at most the bound over sqrt(d), and both variances at most its square over d. A measurement above its bound would be a bug in the lab."</p>
            <p>"The gradient chart marks the bound on the gradient entering the last layer under the final LayerNorm: it shrinks as hidden states grow, which is why large Pre-LN states slow learning in the early layers."</p>
            <h2>"Paper or derived?"</h2>
            <p>"The claims come from “Stability of Transformers under Layer Normalization” (Kan et al., 2025, arXiv 2510.09904): Pre-LN states can grow exponentially with depth and weight decay keeps them below an exponential bound; Peri-LN keeps first moments linear and second moments quadratic in depth; Δt < 1 (0.1 in the paper's GPT-2 runs) makes both more stable. The bounds drawn here are derived for this lab from the model's definition, not quoted from the paper; the Pre-LN exponential curve is a least-squares fit that shows the shape of the paper's bound, not its constant."</p>
        </section>
    }
}
