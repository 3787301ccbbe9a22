// The case page's few interactions; the page works without them (the server checks the
// form and asks for the cancer confirmation itself).
"use strict";

(function () {
  // --- zoom: wheel, pinch (two pointers), drag to pan, +/- keys, buttons
  const box = document.getElementById("zoom");
  const img = document.getElementById("case-image");
  if (box && img) {
    let scale = 1, x = 0, y = 0;
    const pointers = new Map();
    let pinchStart = null;
    const apply = () => {
      img.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
      box.classList.toggle("zoomed", scale > 1);
    };
    const zoomAt = (factor, cx, cy) => {
      const next = Math.min(8, Math.max(1, scale * factor));
      const r = img.getBoundingClientRect();
      // keep the point under the cursor where it is
      const px = (cx - r.left) / scale, py = (cy - r.top) / scale;
      x += (scale - next) * px;
      y += (scale - next) * py;
      scale = next;
      if (scale === 1) { x = 0; y = 0; }
      apply();
    };
    const centre = () => {
      const r = box.getBoundingClientRect();
      return [r.left + r.width / 2, r.top + r.height / 2];
    };
    box.addEventListener("wheel", (e) => {
      e.preventDefault();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX, e.clientY);
    }, { passive: false });
    box.addEventListener("pointerdown", (e) => {
      pointers.set(e.pointerId, [e.clientX, e.clientY]);
      // keep receiving moves outside the box; a pointer the browser no longer tracks throws
      try { box.setPointerCapture(e.pointerId); } catch (_) { /* moves inside still count */ }
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        pinchStart = Math.hypot(a[0] - b[0], a[1] - b[1]);
      }
    });
    box.addEventListener("pointermove", (e) => {
      if (!pointers.has(e.pointerId)) return;
      const [ox, oy] = pointers.get(e.pointerId);
      pointers.set(e.pointerId, [e.clientX, e.clientY]);
      if (pointers.size === 2 && pinchStart) {
        const [a, b] = [...pointers.values()];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        zoomAt(d / pinchStart, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
        pinchStart = d;
      } else if (pointers.size === 1 && scale > 1) {
        x += e.clientX - ox;
        y += e.clientY - oy;
        apply();
      }
    });
    const up = (e) => { pointers.delete(e.pointerId); if (pointers.size < 2) pinchStart = null; };
    box.addEventListener("pointerup", up);
    box.addEventListener("pointercancel", up);
    box.addEventListener("dblclick", (e) => zoomAt(scale > 1 ? 1 / scale : 2.5, e.clientX, e.clientY));
    box.addEventListener("keydown", (e) => {
      if (e.key === "+" || e.key === "=") { zoomAt(1.25, ...centre()); e.preventDefault(); }
      if (e.key === "-") { zoomAt(0.8, ...centre()); e.preventDefault(); }
      if (e.key === "0") { scale = 1; x = 0; y = 0; apply(); e.preventDefault(); }
    });
    document.querySelectorAll("[data-zoom]").forEach((button) => {
      button.addEventListener("click", () => {
        const how = button.dataset.zoom;
        if (how === "reset") { scale = 1; x = 0; y = 0; apply(); return; }
        zoomAt(how === "in" ? 1.5 : 1 / 1.5, ...centre());
      });
    });
    // The document records the full picture's bytes, not its pixels: say them once loaded.
    const size = document.getElementById("image-size");
    const pixels = document.querySelector("[data-image-size]");
    const showSize = () => {
      if (!img.naturalWidth) return;
      if (size) size.textContent = ` (${img.naturalWidth} × ${img.naturalHeight} px)`;
      if (pixels) pixels.textContent = `${img.naturalWidth}×${img.naturalHeight}, `;
    };
    if (img.complete) showSize(); else img.addEventListener("load", showSize);
  }

  // --- keyboard shortcuts: 1-7 choose a diagnosis (not while typing)
  const form = document.getElementById("decision-form");
  if (!form) return;
  // a form that came back with problems: say them first (screen readers, keyboard users)
  const problems = document.getElementById("form-problems");
  if (problems) { problems.tabIndex = -1; problems.focus(); }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
              (t.tagName === "INPUT" && t.type !== "radio" && t.type !== "checkbox"))) return;
    const radio = form.querySelector(`input[name="label"][data-key="${e.key}"]`);
    if (radio) { radio.checked = true; radio.focus(); e.preventDefault(); }
  });

  // --- a possible cancer with a recommendation that is not an urgent referral: ask first
  const urgent = (form.dataset.urgent || "").split(" ");
  form.addEventListener("submit", (e) => {
    const label = form.querySelector('input[name="label"]:checked');
    const template = form.querySelector("#template").value;
    const box = form.querySelector('input[name="confirm_non_urgent"]');
    if (!label || !urgent.includes(label.value) || urgent.includes(template)) return;
    if (box && box.checked) return;
    const name = label.value.replace(/_/g, " ");
    if (window.confirm(`${name} is a possible cancer, but the recommendation is not an urgent referral. Send it anyway?`)) {
      const hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "confirm_non_urgent"; hidden.value = "yes";
      form.appendChild(hidden);
    } else {
      e.preventDefault();
    }
  });
})();
