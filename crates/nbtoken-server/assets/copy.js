// The copy button of the page that shows a new token: the only script of the UI. Without
// it the button stays hidden and the value can be selected and copied by hand.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById("copy-status");
    if (!source || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent).then(
        function () { if (status) { status.textContent = "Copied to the clipboard."; } },
        function () { if (status) { status.textContent = "Copying failed: select the value and copy it."; } }
      );
    });
  });
});
