// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // Live filtering of the "all services" list as one types.
  const search = document.querySelector("[data-filter]");
  if (search) {
    const items = document.querySelectorAll(search.dataset.filter);
    search.addEventListener("input", () => {
      const words = search.value.trim().toLowerCase();
      items.forEach((item) => {
        item.hidden = words !== "" && !item.dataset.keywords.includes(words);
      });
    });
  }
  // A payment code is replaced when it expires.
  const code = document.querySelector("[data-expires-in]");
  if (code) {
    setTimeout(() => window.location.reload(), Number(code.dataset.expiresIn) * 1000);
  }
  // One click, one submission (the form's idempotency key makes a second one harmless).
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", () => {
      form.querySelectorAll("button[type=submit]").forEach((button) => {
        setTimeout(() => { button.disabled = true; }, 0);
      });
    });
  });
});
