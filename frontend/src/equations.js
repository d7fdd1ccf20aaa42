// The derivation's equations for one layer, with the latest step's numbers beside them (plain HTML).
// Layers are numbered as in the contract: k = 1..L, W^k maps a^{k-1} to z^k, δ^k is the error at z^k.

import { fmt } from "./charts.js";

const FPRIME = {
  tanh: "f′(z) = 1 − a²",
  sigmoid: "f′(z) = a (1 − a)",
  relu: "f′(z) = 1 if z &gt; 0 else 0",
  leaky_relu: "f′(z) = 1 if z &gt; 0 else 0.01",
  linear: "f′(z) = 1",
  softmax: "softmax: δ<sup>L</sup> = a<sup>L</sup> − y (f′ shown: diagonal a(1 − a))",
};

const sup = (s) => `<sup>${s}</sup>`;
const pct = (v) => (typeof v === "number" ? `${(100 * v).toFixed(1)}%` : "–");

/**
 * HTML for layer index k (0-based) of L layers. stats: that layer's LayerStats (or undefined);
 * spec: the run's spec (loss, regularization); where: {step, epoch} of the numbers.
 */
export function equationsHtml(k, L, stats, spec, where) {
  const l = k + 1;
  const act = stats?.activation ?? spec?.layers?.[k]?.activation ?? "";
  const loss = spec?.loss ?? "";
  const reg = spec?.regularization ?? {};
  const rows = [];
  const row = (eq, val, note = "") =>
    rows.push(`<div class="eq-row"><div class="eq">${eq}</div><div class="eq-val">${val}</div>${note ? `<div class="eq-note">${note}</div>` : ""}</div>`);

  if (l === L) {
    const simple =
      (act === "softmax" && loss === "cross_entropy") || (act === "sigmoid" && loss === "binary_cross_entropy");
    row(
      `δ${sup("L")} = ∂ℓ/∂a${sup("L")} ⊙ f′(z${sup("L")})${simple ? ` = a${sup("L")} − y` : ""}`,
      `rms ${fmt(stats?.delta?.rms)} · mean |δ| ${fmt(stats?.delta?.mean_abs)} · max |δ| ${fmt(stats?.delta?.max_abs)}`,
      `output layer (${act}, loss ${loss || "?"}): δ starts here`,
    );
  } else {
    row(
      `δ${sup(l)} = (W${sup(`${l + 1}`)}${sup("T")} δ${sup(l + 1)}) ⊙ f′(z${sup(l)})`,
      `rms ${fmt(stats?.delta?.rms)} · mean |δ| ${fmt(stats?.delta?.mean_abs)} · max |δ| ${fmt(stats?.delta?.max_abs)}`,
    );
    row(
      `‖W${sup(l + 1)}${sup("T")} δ${sup(l + 1)}‖`,
      fmt(stats?.backprop_norm),
      "the error flowing down from the layer above (batch Frobenius norm)",
    );
  }
  row(
    `f′(z${sup(l)}) — ${FPRIME[act] ?? act}`,
    `mean ${fmt(stats?.fprime?.mean)} · zero (dead) ${pct(stats?.fprime?.zero_fraction)} · saturated (&lt; 10⁻²) ${pct(
      stats?.fprime?.saturated_fraction,
    )}`,
  );
  const regTerms = [reg.l2 ? ` + ${reg.l2}·W${sup(l)}` : "", reg.l1 ? ` + ${reg.l1}·sign(W${sup(l)})` : ""].join("");
  row(
    `∂J/∂W${sup(l)} = mean<sub>i</sub> δ${sup(l)}<sub>i</sub> (a${sup(l - 1)}<sub>i</sub>)${sup("T")}${regTerms}`,
    `‖∂J/∂W${sup(l)}‖ = ${fmt(stats?.grad_W_norm)}`,
  );
  row(`∂J/∂b${sup(l)} = mean<sub>i</sub> δ${sup(l)}<sub>i</sub>`, `‖∂J/∂b${sup(l)}‖ = ${fmt(stats?.grad_b_norm)}`);
  row(
    `‖ΔW${sup(l)}‖ / ‖W${sup(l)}‖`,
    `${fmt(stats?.update_ratio)} (‖W${sup(l)}‖ = ${fmt(stats?.W_norm)})`,
    "healthy training moves weights by about 10⁻³ of their size per step",
  );
  const at = where?.step !== undefined ? `numbers from step ${where.step}, epoch ${where.epoch ?? "?"}` : "no step yet";
  return `<div class="eq-head">Layer ${l} of ${L} · ${act} · ${at}</div>${rows.join("")}`;
}
