// The users page: an agent's queue interfaces set through PUT /api/v1/users/{login}/interfaces.
"use strict";

(function () {
  const words = JSON.parse(document.getElementById("admin-data").textContent);

  for (const form of document.querySelectorAll("form.interfaces")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const result = form.querySelector(".result");
      const interfaces = form.elements.interfaces.value
        .split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
      let r;
      try {
        r = await fetch("/api/v1/users/" + encodeURIComponent(form.dataset.login) + "/interfaces", {
          method: "PUT",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ interfaces }),
        });
      } catch (e) {
        result.textContent = words.network;
        return;
      }
      let answer = null;
      try { answer = await r.json(); } catch (e) { answer = null; }
      if (r.ok) {
        const saved = (answer && answer.interfaces) || interfaces;
        form.elements.interfaces.value = saved.join(", ");
        result.textContent = "✓ " + words.saved;
      } else if (r.status === 401) {
        location.assign("/login?next=" + encodeURIComponent(location.pathname));
      } else {
        const code = (answer && answer.error) || String(r.status);
        const text = code === "interface_taken" ? words.interface_taken
          : code === "invalid_interface" ? words.invalid_interface
          : r.status === 422 ? words.validation : words.error;
        result.textContent = "⚠ " + text + " (" + code + ")";
      }
    });
  }
})();
