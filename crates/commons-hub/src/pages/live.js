// Commons' one script: an element with `data-live` is fetched again every few seconds and
// replaced by the same element of the fresh page, until that element no longer carries
// `data-live` (the job finished). Without this script the page is whole, only not updated.
(function () {
  "use strict";
  function refresh() {
    var live = document.querySelector("[data-live]");
    if (!live) return;
    fetch(window.location.href, { headers: { accept: "text/html" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(live.id);
        if (fresh) live.replaceWith(fresh);
        if (fresh && fresh.hasAttribute("data-live")) setTimeout(refresh, 2000);
      })
      .catch(function () { setTimeout(refresh, 5000); });
  }
  setTimeout(refresh, 2000);
})();
