// Small DOM helpers every view shares: HTML escaping and sizing a canvas for the screen's pixel ratio.

const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };

/** Text made safe to put inside HTML (element content or a double-quoted attribute); null → "". */
export const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ENTITIES[c]);

/**
 * Size the canvas's backing store to width×height CSS pixels times devicePixelRatio (only when that
 * changed) and return its 2-D context, cleared and scaled so drawing happens in CSS pixels.
 */
export function fitCanvas(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(width * dpr);
  const h = Math.round(height * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}
