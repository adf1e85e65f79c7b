// The little the dashboard needs: live regions that poll, and confirmation of risky forms.
document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-poll]")) {
    const every = Number(region.dataset.every || 5000);
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const answer = await fetch(region.dataset.poll, {credentials: "same-origin"});
        if (answer.ok && !answer.redirected) region.innerHTML = await answer.text();
      } catch (e) { /* the next poll tries again */ }
    };
    setInterval(refresh, every);
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
