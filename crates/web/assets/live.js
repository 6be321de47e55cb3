// The live feed on the home page: friends' new posts are put at the top as they are published.
// The page works without this script; it only adds what arrives after the page was rendered.
// Every connection asks the server to replay posts newer than a point a little before the
// newest post the page has (`since`): post ids are creation times, and a post may be committed
// and delivered a little after a newer one, so resuming exactly at the newest could skip it. A
// post already on the page is never added twice.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  if (!feed || !feed.dataset.live) return;
  var status = document.getElementById("live-status");
  // The newest post id seen, or (empty feed) an id for the time the page was rendered.
  var newest = BigInt(feed.dataset.since || "0");
  // How far before the newest post each connection resumes, in id units.
  var lookBack = BigInt(feed.dataset.lookBack || "0");
  var delay = 500;
  var failures = 0;
  var names = {};

  function say(text) {
    if (status) status.textContent = text;
  }

  function authorName(id, link) {
    if (names[id]) { link.textContent = names[id]; return; }
    fetch("/user/get/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (user) {
        if (!user) return;
        names[id] = user.first_name + " " + user.second_name;
        link.textContent = names[id];
      })
      .catch(function () {});
  }

  function show(message) {
    if (!message || !message.postId) return;
    var id = BigInt(message.postId);
    if (id > newest) newest = id;
    if (document.getElementById("post-" + message.postId)) return;
    var empty = feed.querySelector(".empty");
    if (empty) empty.remove();
    var item = document.createElement("li");
    item.className = "post fresh";
    item.id = "post-" + message.postId;
    item.dataset.postId = message.postId;
    var meta = document.createElement("p");
    meta.className = "meta";
    var author = document.createElement("a");
    author.href = "/people/" + encodeURIComponent(message.author_user_id);
    author.textContent = "user " + message.author_user_id;
    authorName(message.author_user_id, author);
    var open = document.createElement("a");
    open.href = "/posts/" + encodeURIComponent(message.postId);
    open.textContent = "open";
    meta.append(author, " · ", open);
    var text = document.createElement("p");
    text.className = "text";
    text.textContent = message.postText;
    item.append(meta, text);
    feed.prepend(item);
  }

  function resumeFrom() {
    var from = newest - lookBack;
    return from > 0n ? String(from) : "";
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var since = resumeFrom();
    var url = scheme + location.host + feed.dataset.live + (since ? "?since=" + since : "");
    var socket = new WebSocket(url);
    var opened = 0;
    socket.onopen = function () {
      opened = Date.now();
      feed.dataset.connected = "true";
      say("Live: new posts appear at the top as they are published.");
    };
    socket.onmessage = function (event) {
      try { show(JSON.parse(event.data)); } catch (ignored) { /* not a post */ }
    };
    socket.onclose = function (event) {
      feed.dataset.connected = "false";
      if (event.code === 1008) {
        // The session ended (signed out elsewhere, or expired): reconnecting cannot help.
        say("Your session has ended: reload the page to sign in again.");
        return;
      }
      // Only a connection that lasted counts as a success: one refused or closed at once
      // must not reset the backoff, or a broken server would be asked twice a second.
      if (opened && Date.now() - opened > 5000) {
        delay = 500;
        failures = 0;
      }
      failures += 1;
      say(failures > 5
        ? "Live updates are unavailable; still trying. Reloading the page shows the newest posts."
        : "Live updates paused: reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  connect();
})();
