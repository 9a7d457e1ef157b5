// Small DOM helpers shared by the views. Data reaches the page as text only (textContent), never as
// HTML, so camera names, labels and errors cannot inject markup.

export const $ = (id) => document.getElementById(id);

/** A new element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** A button of `label` that calls `onClick`. */
export function button(label, className, onClick) {
  const node = el("button", className, label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

/** Local time of Unix seconds `t`. */
export function timeText(t) {
  return new Date(t * 1000).toLocaleString();
}

/** `score` (0-1) as a whole percentage. */
export function percent(score) {
  return (score * 100).toFixed(0) + "%";
}
