// What the page shows that may be a problem: exception boxes, error alerts, and stApp's script and
// connection state.
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const text = e => (e.innerText || '').trim().replace(/\s+/g, ' ').slice(0, 400);
  return {exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(text),
          errors: [...document.querySelectorAll('[data-testid="stAlertContentError"]')].map(text),
          state: app && app.getAttribute('data-test-script-state'),
          conn: app && app.getAttribute('data-test-connection-state')};
}
