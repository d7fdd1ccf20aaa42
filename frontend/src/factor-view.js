// The factor split: δ^k = (W^{k+1}ᵀ δ^{k+1}) ⊙ f′(z^k), so from one layer down to the next δ's rms
// changes by (what the weights do) × (what f′ does):
//     gain_W = rms(Wᵀδ from above) / rms(δ^{k+1})      gain_f′ = rms(δ^k) / rms(Wᵀδ from above)
// with rms(Wᵀδ) = backprop_norm / sqrt(batch · units_k). Their product is the layer's δ ratio exactly,
// so a user sees whether δ vanishes because of the weights or because units saturate or die.

import { fmt } from "./charts.js";

const pct = (v) => (typeof v === "number" ? `${(100 * v).toFixed(0)}%` : "–");

function bar(t, cls) {
  const w = Math.max(0, Math.min(1, t)) * 100;
  return `<span class="bar ${cls}"><span style="width:${w.toFixed(1)}%"></span></span>`;
}

/** Rows per layer (output first) and a one-line verdict. layers: the step's LayerStats; batch: rows per batch. */
export function factorSplit(layers, batch) {
  const L = layers.length;
  const rows = [];
  for (let k = L - 1; k >= 0; k--) {
    const s = layers[k];
    const above = layers[k + 1];
    const units = s.units ?? s.delta?.unit_mean_abs?.length ?? 1;
    const bpRms = s.backprop_norm != null ? s.backprop_norm / Math.sqrt(Math.max(1, batch * units)) : null;
    const gainW = above && bpRms !== null && above.delta?.rms > 0 ? bpRms / above.delta.rms : null;
    const gainF = bpRms > 0 ? s.delta?.rms / bpRms : null;
    rows.push({ k, s, bpRms, gainW, gainF });
  }
  // The verdict: the layer where δ shrinks most, and which factor does it.
  let worst = null;
  for (const r of rows) {
    if (r.gainW === null || r.gainF === null) continue;
    const g = r.gainW * r.gainF;
    if (!worst || g < worst.g) worst = { ...r, g };
  }
  let verdict = "";
  if (worst && worst.g < 0.5) {
    const f = worst.s.fprime ?? {};
    const why =
      worst.gainF < worst.gainW
        ? `mostly f′(z) (×${fmt(worst.gainF)}: mean f′ ${fmt(f.mean)}, ${pct(f.zero_fraction)} dead, ${pct(
            f.saturated_fraction,
          )} saturated) — the units, not the weights`
        : `mostly the weights (Wᵀ passes ×${fmt(worst.gainW)} of δ down) — f′ only ×${fmt(worst.gainF)}`;
    verdict = `δ shrinks most from layer ${worst.k + 2} to layer ${worst.k + 1} (×${fmt(worst.g)}): ${why}.`;
  } else if (worst) {
    verdict = "No layer shrinks δ by more than half on the way down.";
  }
  return { rows, verdict };
}

export function factorHtml(layers, batch, loss) {
  if (!layers?.length) return '<p class="muted">Waiting for the first step…</p>';
  const { rows, verdict } = factorSplit(layers, batch);
  let maxLog = -Infinity;
  for (const r of rows) if (r.s.delta?.rms > 0) maxLog = Math.max(maxLog, Math.log10(r.s.delta.rms));
  const logBar = (v) => (v > 0 && Number.isFinite(maxLog) ? bar(1 + (Math.log10(v) - maxLog) / 6, "b-delta") : bar(0, "b-delta"));
  const body = rows
    .map(({ k, s, bpRms, gainW, gainF }) => {
      const f = s.fprime ?? {};
      // At the output, sigmoid + binary cross-entropy and softmax + cross-entropy cancel f′ (δ = a − y).
      const cancels = k === layers.length - 1 && ((s.activation === "sigmoid" && loss === "binary_cross_entropy") || s.activation === "softmax");
      const flag = (bad) => (bad && !cancels ? "shrink" : "");
      const fmax = s.activation === "sigmoid" ? 0.25 : 1;
      return `<tr>
        <th scope="row">L${k + 1} <small>${s.activation ?? ""}</small></th>
        <td title="rms of Wᵀδ arriving from layer ${k + 2}">${bpRms === null ? "<i>output</i>" : fmt(bpRms)}</td>
        <td class="${gainW !== null && gainW < 0.5 ? "shrink" : ""}">${gainW === null ? "" : `×${fmt(gainW)}`}</td>
        <td>${bar((f.mean ?? 0) / fmax, "b-fp")} ${fmt(f.mean)}</td>
        <td class="${flag(f.zero_fraction > 0.8)}">${pct(f.zero_fraction)}</td>
        <td class="${flag(f.saturated_fraction > 0.5)}"${cancels ? ' title="f′ cancels against the loss here: δ = a − y"' : ""}>${pct(f.saturated_fraction)}${cancels ? "*" : ""}</td>
        <td class="${gainF !== null && gainF < 0.5 ? "shrink" : ""}">${gainF === null ? "" : `×${fmt(gainF)}`}</td>
        <td>${logBar(s.delta?.rms)} ${fmt(s.delta?.rms)}</td>
      </tr>`;
    })
    .join("");
  return `<table class="factor">
    <thead><tr><th>layer</th><th>rms Wᵀδ<br><small>from above</small></th><th>×Wᵀ</th><th>mean f′(z)</th>
    <th>dead<br><small>f′=0</small></th><th>sat.<br><small>f′&lt;10⁻²</small></th><th>×f′</th><th>δ rms</th></tr></thead>
    <tbody>${body}</tbody></table>
    <p class="verdict">${verdict}</p>
    ${loss && layers.length && ["sigmoid", "softmax"].includes(layers[layers.length - 1].activation) && loss !== "mse" ? '<p class="legend">* at the output f′ cancels against the loss (δ = a − y), so saturation there does not shrink δ.</p>' : ""}`;
}
