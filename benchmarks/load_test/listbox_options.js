// The options of an open selectbox's list, in order: [selected, focused] for each.
(box) => {
  const list = document.getElementById(box.getAttribute('aria-controls'));
  const state = o => [o.getAttribute('aria-selected') === 'true', o.getAttribute('data-focused') === 'true'];
  return list ? [...list.querySelectorAll('[role="option"]')].map(state) : [];
}
