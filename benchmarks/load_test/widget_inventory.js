// The visible, enabled widgets under a root: [kind, index among its kind, extra] for the driver.
(root) => {
  const scope = document.querySelector(root);
  if (!scope) return [];
  const shown = e => {  // what Playwright calls visible (not in a closed expander), and not left over from a run
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true})
      && !e.closest('[data-stale="true"]');
  };
  const out = [];
  scope.querySelectorAll('[data-testid="stSlider"]').forEach((w, i) => {
    if (!shown(w)) return;
    w.querySelectorAll('input[type="range"]').forEach((t, j) => {
      if (!t.disabled && shown(t.parentElement))
        out.push(['slider', i, {thumb: j, value: +t.value, min: +t.min, max: +t.max}]);
    });
  });
  scope.querySelectorAll('[data-testid="stRadio"]').forEach((w, i) => {
    if (!shown(w)) return;
    const options = [...w.querySelectorAll('[data-testid="stRadioOption"]')];
    const free = options.map((o, j) => [o, j]).filter(([o]) => o.getAttribute('data-selected') !== 'true' && shown(o)
      && !o.querySelector('input').disabled).map(([o, j]) => j);
    if (free.length) out.push(['radio', i, {options: free, labels: options.map(o => o.innerText.trim())}]);
  });
  scope.querySelectorAll('[data-testid="stSelectbox"]').forEach((w, i) => {
    const input = w.querySelector('input[role="combobox"]');
    if (input && shown(input) && !input.disabled) out.push(['selectbox', i, {value: input.value}]);
  });
  scope.querySelectorAll('[data-testid="stCheckbox"]').forEach((w, i) => {
    const input = w.querySelector('input');
    if (input && shown(w.querySelector('label') || w) && !input.disabled) out.push(['checkbox', i, {}]);
  });
  scope.querySelectorAll('[data-testid="stNumberInput"]').forEach((w, i) => {
    if (!shown(w)) return;
    const up = w.querySelector('[data-testid="stNumberInputStepUp"]');
    const down = w.querySelector('[data-testid="stNumberInputStepDown"]');
    const dirs = [];
    if (up && shown(up) && !up.disabled) dirs.push('StepUp');
    if (down && shown(down) && !down.disabled) dirs.push('StepDown');
    if (dirs.length) out.push(['number', i, {dirs}]);
  });
  scope.querySelectorAll('[data-testid="stExpander"]').forEach((w, i) => {
    const summary = w.querySelector('summary');
    if (summary && shown(summary)) out.push(['expander', i, {}]);
  });
  return out;
}
