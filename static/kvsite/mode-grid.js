/* The mode grid: keep the 12-letter preview (e.g. cdwr--wr---r) and the number in step with the
   ticked boxes. The server renders both too, so the page reads right without this script. */
"use strict";
(function () {
  function refresh(grid) {
    let text = "";
    let mode = 0;
    grid.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      text += box.checked ? box.dataset.letter : "-";
      if (box.checked) {
        mode |= parseInt(box.value, 10);
      }
    });
    grid.querySelector("[data-kv-mode-text]").textContent = text;
    grid.querySelector("[data-kv-mode-number]").textContent = String(mode);
  }

  function init() {
    document.querySelectorAll("[data-kv-mode]").forEach(function (grid) {
      grid.addEventListener("change", function () { refresh(grid); });
      refresh(grid);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
