// What stands in the way of a click on an element: whether it is disabled, its box, its text, and
// the element on top at its centre (covered: that element is not inside it).
(e) => {
  const r = e.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
  const top = document.elementFromPoint(x, y);
  return {disabled: e.disabled, box: [r.x, r.y, r.width, r.height], text: e.innerText,
          on_top: top ? top.outerHTML.slice(0, 200) : null, covered: top ? !e.contains(top) : null};
}
