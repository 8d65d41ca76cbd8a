/*!
 * GWM Avatars web widget: the <gwm-avatar> custom element.
 *
 * One plain script, no build step and no imports, so it loads both ways:
 *   <script src="https://avatar.example.com/widget.js" async></script>
 *   <script type="module" src="https://avatar.example.com/widget.js"></script>
 * It defines nothing global but the custom element. Everything it draws lives in a
 * shadow DOM with its own styles; see README.md ("Embed it on your site") for the
 * attributes, events and the token endpoint contract.
 */
(function () {
  "use strict";

  if (typeof window === "undefined" || !window.customElements) return;
  if (window.customElements.get("gwm-avatar")) return;

  var TAG = "gwm-avatar";
  var ICE_GATHER_TIMEOUT_MS = 5000;
  var ICE_FETCH_TIMEOUT_MS = 5000;
  var CHANNEL_OPEN_TIMEOUT_MS = 15000;
  var DISCONNECT_GRACE_MS = 4000;
  var DELETE_WAIT_MS = 2000;
  var MAX_CAPTIONS = 60;
  var MAX_TEXT = 2000;
  var DEFAULT_RETRY_S = 5;
  var DEFAULT_AUDIO_PROCESSING = "echo-cancellation";

  /** Origin of the script that defined the element: the default `server`. */
  var SCRIPT_ORIGIN = (function () {
    var src = document.currentScript && document.currentScript.src;
    if (!src) {
      // As a module, currentScript is null: find our own tag by its file name.
      var scripts = document.querySelectorAll("script[src]");
      for (var i = 0; i < scripts.length; i++) {
        if (/\/widget\.js(?:[?#].*)?$/.test(scripts[i].src)) {
          src = scripts[i].src;
          break;
        }
      }
    }
    try {
      return src ? new URL(src, document.baseURI).origin : "";
    } catch (e) {
      return "";
    }
  })();

  var TEXT = {
    launch: "Talk to the avatar",
    retry: "Try again",
    connecting: "Connecting…",
    reconnecting: "The connection dropped. Reconnecting…",
    ended: "The call has ended.",
    micDenied: "Microphone access was denied. You can still type to the avatar.",
    micMissing: "No microphone is available. You can still type to the avatar.",
    micInsecure: "The microphone needs a secure (https) page. You can still type to the avatar.",
    unreachable: "The avatar service cannot be reached. Check your connection and try again.",
    notAllowed: "This site is not allowed to use the avatar.",
    lost: "The connection to the avatar was lost.",
    noWebrtc: "This browser cannot make calls (WebRTC is not available).",
    tokenFailed: "This site could not get access to the avatar. Try again later.",
    failed: "The call could not be started. Try again.",
    soundBlocked: "Sound is off — tap to turn it on",
    busy: function (s) {
      return "The avatar is busy. Try again in " + s + " s.";
    },
    starting: function (s) {
      return "The avatar is starting up. Try again in " + s + " s.";
    },
    tooMany: function (s) {
      return "Too many calls from here right now. Try again in " + s + " s.";
    },
  };

  var STATE_LABEL = {
    idle: "Ready",
    listening: "Listening",
    thinking: "Thinking…",
    speaking: "Speaking",
  };

  var STYLE = [
    ":host { all: initial; display: block !important; width: 100%; max-width: 480px;",
    "  contain: layout paint; }",
    ":host([hidden]) { display: none !important; }",
    ":host([floating]) { position: fixed !important; right: 16px; bottom: 16px;",
    "  z-index: 2147483000; width: min(380px, calc(100vw - 32px)); }",
    "*, *::before, *::after { box-sizing: border-box; }",
    "[hidden] { display: none !important; }",
    ".w { all: initial; box-sizing: border-box; display: flex; flex-direction: column; gap: 8px;",
    "  width: 100%; padding: 10px; background: #ffffff; color: #1f2328;",
    "  border: 1px solid #d0d7de; border-radius: 14px; box-shadow: 0 4px 18px rgba(0,0,0,.12);",
    "  font: 15px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;",
    "  text-align: left; direction: ltr; visibility: visible; }",
    ".stage { position: relative; display: block; width: 100%; aspect-ratio: 1 / 1;",
    "  background: #000; border-radius: 10px; overflow: hidden; }",
    "video { display: block; position: absolute; inset: 0; width: 100%; height: 100%;",
    "  max-width: none; object-fit: contain; background: #000; margin: 0; border: 0; }",
    ".badge { position: absolute; top: 8px; left: 8px; display: inline-block; padding: 3px 10px;",
    "  border-radius: 999px; background: rgba(0,0,0,.62); color: #fff; font-size: 13px; }",
    ".sound { position: absolute; bottom: 8px; left: 50%; transform: translateX(-50%); }",
    ".bar { display: flex; flex-wrap: wrap; gap: 6px; }",
    "button { display: inline-flex; align-items: center; justify-content: center; margin: 0;",
    "  min-height: 40px; padding: 8px 14px; border: 0; border-radius: 8px; background: #e7ebf0;",
    "  color: #1f2328; font: inherit; font-weight: 600; cursor: pointer; }",
    "button:hover { background: #d8dee5; }",
    "button:focus-visible, input:focus-visible { outline: 3px solid #5b9bff; outline-offset: 2px; }",
    "button:disabled { opacity: .55; cursor: default; }",
    "button.primary { background: #1f6feb; color: #fff; }",
    "button.primary:hover { background: #1a5fcc; }",
    "button.danger { background: #d1242f; color: #fff; }",
    "button.danger:hover { background: #b31d27; }",
    "button[aria-pressed='true'] { background: #fbe3a2; }",
    ".launch { flex: 1 1 auto; }",
    ".msg { display: block; margin: 0; padding: 8px 10px; border-radius: 8px;",
    "  background: #fff4d6; color: #5c4400; font-size: 14px; }",
    ".msg.error { background: #ffe3e3; color: #7d1118; }",
    ".captions { display: block; max-height: 180px; overflow-y: auto; margin: 0; padding: 0;",
    "  font-size: 14px; }",
    ".line { display: block; margin: 0 0 4px 0; overflow-wrap: anywhere; }",
    ".who { font-weight: 700; margin-right: 4px; }",
    ".user .who { color: #0b5cad; }",
    ".avatar .who { color: #1a7f37; }",
    ".say { display: flex; gap: 6px; margin: 0; }",
    "input { display: block; flex: 1 1 auto; min-width: 0; min-height: 40px; margin: 0;",
    "  padding: 8px 10px; border: 1px solid #d0d7de; border-radius: 8px; background: #fff;",
    "  color: #1f2328; font: inherit; }",
  ].join("\n");

  var TEMPLATE =
    '<div class="w" part="container">' +
    '<div class="stage" hidden>' +
    '<video playsinline autoplay aria-label="The avatar"></video>' +
    '<span class="badge" aria-live="polite">Connecting…</span>' +
    '<button type="button" class="sound" hidden>' + TEXT.soundBlocked + "</button>" +
    "</div>" +
    '<div class="bar">' +
    '<button type="button" class="launch primary">' + TEXT.launch + "</button>" +
    '<button type="button" class="mute" aria-pressed="false" hidden>Mute</button>' +
    '<button type="button" class="stop" aria-label="Stop the avatar talking" hidden>Stop</button>' +
    '<button type="button" class="hangup danger" hidden>Hang up</button>' +
    "</div>" +
    '<p class="msg" role="status" aria-live="polite" hidden></p>' +
    '<div class="captions" role="log" aria-live="polite" aria-label="Captions" hidden></div>' +
    '<form class="say" hidden>' +
    '<input type="text" aria-label="Type a message to the avatar" placeholder="Type a message…"' +
    ' maxlength="' + MAX_TEXT + '" autocomplete="off" enterkeyhint="send">' +
    '<button type="submit">Send</button>' +
    "</form>" +
    "</div>";

  /** A failure with a stable code and a message for people. */
  function WidgetError(code, message) {
    this.code = code;
    this.message = message;
  }

  function delay(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function iceGathered(pc, timeoutMs) {
    return new Promise(function (resolve) {
      if (pc.iceGatheringState === "complete") return resolve();
      var timer = setTimeout(done, timeoutMs);
      function check() {
        if (pc.iceGatheringState === "complete") done();
      }
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function channelOpen(channel, timeoutMs) {
    return new Promise(function (resolve, reject) {
      if (channel.readyState === "open") return resolve();
      var timer = setTimeout(function () {
        reject(new WidgetError("connect_timeout", TEXT.failed));
      }, timeoutMs);
      channel.addEventListener("open", function () {
        clearTimeout(timer);
        resolve();
      });
      channel.addEventListener("close", function () {
        clearTimeout(timer);
        reject(new WidgetError("connect_failed", TEXT.failed));
      });
    });
  }

  async function readError(resp) {
    try {
      var body = await resp.json();
      if (body && body.error) return body.error;
    } catch (e) {
      /* not JSON */
    }
    return { code: "http_" + resp.status, message: resp.statusText || "HTTP " + resp.status };
  }

  function retryAfter(resp) {
    var n = parseInt(resp.headers.get("Retry-After") || "", 10);
    return isFinite(n) && n > 0 ? n : DEFAULT_RETRY_S;
  }

  class GwmAvatarElement extends HTMLElement {
    static get observedAttributes() {
      return ["muted"];
    }

    constructor() {
      super();
      var root = this.attachShadow({ mode: "open" });
      var style = document.createElement("style");
      style.textContent = STYLE;
      var holder = document.createElement("div");
      holder.innerHTML = TEMPLATE;
      root.appendChild(style);
      root.appendChild(holder.firstChild);
      var q = function (sel) {
        return root.querySelector(sel);
      };
      this._ui = {
        stage: q(".stage"),
        video: q("video"),
        badge: q(".badge"),
        sound: q(".sound"),
        launch: q(".launch"),
        mute: q(".mute"),
        stop: q(".stop"),
        hangup: q(".hangup"),
        msg: q(".msg"),
        captions: q(".captions"),
        form: q(".say"),
        input: q("input"),
      };
      this._pc = null;
      this._channel = null;
      this._mic = null;
      this._micRefused = false;
      this._sessionId = null;
      this._token = null;
      this._tokenIce = null; // ICE servers the token endpoint passed along, if any
      this._server = "";
      this._phase = "idle"; // idle | connecting | live
      this._gen = 0;
      this._reconnectsLeft = 1;
      this._dropTimer = 0;
      this._replies = new Map();
      this._onPageHide = this._pageHidden.bind(this);

      var self = this;
      this._ui.launch.addEventListener("click", function () {
        self.connect();
      });
      this._ui.hangup.addEventListener("click", function () {
        self.hangup();
      });
      this._ui.stop.addEventListener("click", function () {
        self.interrupt();
      });
      this._ui.mute.addEventListener("click", function () {
        self.muted = !self.muted;
      });
      this._ui.sound.addEventListener("click", function () {
        self._ui.video.muted = false;
        self._ui.sound.hidden = true;
        self._ui.video.play().catch(function () {});
      });
      this._ui.form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        if (self.say(self._ui.input.value)) self._ui.input.value = "";
      });
    }

    connectedCallback() {
      // Keep a host page's sweeping rules (`* { display: none }`) off the element's own
      // box; the `hidden` attribute still hides it (:host([hidden]) wins over this).
      if (!this.style.getPropertyValue("display")) {
        this.style.setProperty("display", "block", "important");
      }
    }

    disconnectedCallback() {
      if (this._phase !== "idle") this.hangup("removed");
    }

    attributeChangedCallback(name) {
      if (name === "muted") this._applyMute();
    }

    // --- public API -------------------------------------------------------------

    /** The live RTCPeerConnection (null when not in a call); for diagnostics and tests. */
    get peerConnection() {
      return this._pc;
    }

    /** The service's id for the current call, or null. */
    get sessionId() {
      return this._sessionId;
    }

    /** Whether a call is up. */
    get connected() {
      return this._phase === "live";
    }

    /** Whether the microphone is muted (reflects the `muted` attribute). */
    get muted() {
      return this.hasAttribute("muted");
    }

    set muted(value) {
      this.toggleAttribute("muted", Boolean(value));
    }

    /** Start a call (what the launcher button does). */
    connect() {
      if (this._phase !== "idle") return Promise.resolve();
      this._reconnectsLeft = 1;
      this._clearCaptions();
      return this._start(false);
    }

    /** Send a typed message; returns whether it was sent. */
    say(text) {
      var t = String(text || "").trim().slice(0, MAX_TEXT);
      if (!t || !this._channel || this._channel.readyState !== "open") return false;
      this._channel.send(JSON.stringify({ type: "text", text: t }));
      return true;
    }

    /** Ask the avatar to stop talking. */
    interrupt() {
      if (this._channel && this._channel.readyState === "open") {
        this._channel.send(JSON.stringify({ type: "interrupt" }));
      }
    }

    /** End the call (DELETE the session) and release the microphone. */
    hangup(reason) {
      var wasUp = this._phase !== "idle";
      this._teardown(true);
      this._releaseMic();
      this._setPhase("idle");
      if (wasUp) this._emit("ended", { reason: reason || "hangup" });
    }

    // --- the call -----------------------------------------------------------------

    async _start(reconnecting) {
      this._plannedEnd = null;
      var gen = ++this._gen;
      this._setPhase("connecting");
      this._showMessage(reconnecting ? TEXT.reconnecting : "", false);
      try {
        if (!window.RTCPeerConnection) throw new WidgetError("no_webrtc", TEXT.noWebrtc);
        this._server = this._serverUrl();
        var mic = await this._microphone();
        if (gen !== this._gen) {
          if (this._phase === "idle") this._releaseMic(); // hung up while asking
          return;
        }
        this._token = await this._fetchToken();
        if (gen !== this._gen) return;
        await this._call(gen, mic, reconnecting);
      } catch (err) {
        if (gen !== this._gen) return;
        this._teardown(true);
        this._releaseMic();
        this._setPhase("idle");
        var e = err instanceof WidgetError ? err : new WidgetError("connect_failed", TEXT.failed);
        if (!(err instanceof WidgetError)) console.warn("gwm-avatar:", err);
        this._fail(e);
        if (reconnecting) this._emit("ended", { reason: "connection_lost" });
      }
    }

    async _call(gen, mic, reconnecting) {
      // ICE servers (STUN, TURN with fresh credentials) before the offer: no trickle ICE.
      var iceServers = await this._iceServers();
      if (gen !== this._gen) return;
      var pc = new RTCPeerConnection({ iceServers: iceServers });
      this._pc = pc;
      if (mic && mic.getAudioTracks().length) {
        pc.addTrack(mic.getAudioTracks()[0], mic);
      } else {
        // No microphone: still offer audio (the service needs the m-line), receive only.
        pc.addTransceiver("audio", { direction: "recvonly" });
      }
      pc.addTransceiver("video", { direction: "recvonly" });
      var channel = pc.createDataChannel("events");
      this._channel = channel;
      var self = this;
      channel.addEventListener("message", function (ev) {
        if (gen === self._gen) self._onEvent(ev.data);
      });
      channel.addEventListener("close", function () {
        if (gen === self._gen && self._phase === "live") self._dropped(gen, true);
      });
      pc.addEventListener("connectionstatechange", function () {
        self._connectionChanged(gen, pc);
      });

      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc, ICE_GATHER_TIMEOUT_MS);
      if (gen !== this._gen) return;
      var body = {
        sdp: pc.localDescription.sdp,
        type: "offer",
      };
      var avatar = this.getAttribute("avatar");
      var voice = this.getAttribute("voice");
      var prompt = this.getAttribute("system-prompt");
      var language = this.getAttribute("language");
      if (avatar) body.avatar = avatar;
      if (voice) body.voice = voice;
      if (prompt) body.system_prompt = prompt;
      if (language) body.language = language;
      var resp = await this._api("POST", "/v1/sessions", body);
      if (gen !== this._gen) {
        if (resp.ok) this._deleteSession((await resp.json()).session_id); // hung up meanwhile
        return;
      }
      if (!resp.ok) throw await this._refusal(resp);
      var answer = await resp.json();
      this._sessionId = answer.session_id;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      this._attachMedia(pc);
      await channelOpen(channel, CHANNEL_OPEN_TIMEOUT_MS);
      if (gen !== this._gen) return;
      this._setPhase("live");
      window.addEventListener("pagehide", this._onPageHide);
      this._emit("connected", { sessionId: this._sessionId, reconnected: Boolean(reconnecting) });
    }

    _attachMedia(pc) {
      var tracks = pc
        .getReceivers()
        .map(function (r) {
          return r.track;
        })
        .filter(Boolean);
      var video = this._ui.video;
      video.muted = false;
      video.srcObject = new MediaStream(tracks);
      var sound = this._ui.sound;
      video.play().catch(function (err) {
        if (!err || err.name !== "NotAllowedError") return; // e.g. replaced by a new call
        // Autoplay with sound was blocked: play silently and offer a button for sound.
        video.muted = true;
        sound.hidden = false;
        video.play().catch(function () {});
      });
    }

    _connectionChanged(gen, pc) {
      if (gen !== this._gen) return;
      var state = pc.connectionState;
      clearTimeout(this._dropTimer);
      if (state === "failed" || (state === "closed" && this._phase === "live")) {
        this._dropped(gen);
      } else if (state === "disconnected") {
        var self = this;
        this._dropTimer = setTimeout(function () {
          if (gen === self._gen && pc.connectionState === "disconnected") self._dropped(gen);
        }, DISCONNECT_GRACE_MS);
      }
    }

    _dropped(gen, serverEnded) {
      if (gen !== this._gen || this._phase === "idle") return;
      if (this._plannedEnd) {
        var reason = this._plannedEnd;
        this._plannedEnd = null;
        this._teardown(false);
        this._releaseMic();
        this._setPhase("idle");
        this._showMessage(TEXT.ended, false);
        this._emit("ended", { reason: reason });
        return;
      }
      this._teardown(!serverEnded); // a closed data channel: the service ended the session
      if (this._reconnectsLeft > 0) {
        this._reconnectsLeft -= 1;
        this._start(true);
        return;
      }
      this._releaseMic();
      this._setPhase("idle");
      this._fail(new WidgetError("connection_lost", TEXT.lost));
      this._emit("ended", { reason: "connection_lost" });
    }

    _pageHidden() {
      this.hangup("page_closed");
    }

    _teardown(tellServer) {
      this._gen += 1;
      clearTimeout(this._dropTimer);
      window.removeEventListener("pagehide", this._onPageHide);
      var pc = this._pc;
      var channel = this._channel;
      var close = function () {
        if (channel) {
          try {
            channel.close();
          } catch (e) {
            /* already closed */
          }
        }
        if (pc) pc.close();
      };
      if (tellServer && this._sessionId && pc) {
        // Close the connection once the service has the DELETE: closed first, it would end
        // the session itself and the DELETE would find nothing (a 404 in the console).
        var done = false;
        var finish = function () {
          if (!done) close();
          done = true;
        };
        this._deleteSession(this._sessionId).then(finish, finish);
        setTimeout(finish, DELETE_WAIT_MS);
      } else {
        close();
      }
      this._pc = null;
      this._channel = null;
      this._sessionId = null;
      this._ui.video.srcObject = null;
      this._ui.sound.hidden = true;
    }

    _deleteSession(id) {
      // A session token only opens a session; then closing the connection ends it.
      if (this._token) return Promise.resolve();
      return this._api("DELETE", "/v1/sessions/" + encodeURIComponent(id), null, true).catch(
        function () {}
      );
    }

    _releaseMic() {
      if (this._mic) {
        this._mic.getTracks().forEach(function (t) {
          t.stop();
        });
      }
      this._mic = null;
      this._micRefused = false;
    }

    // --- pieces of the call ---------------------------------------------------------

    _serverUrl() {
      var raw = this.getAttribute("server") || SCRIPT_ORIGIN || window.location.origin;
      try {
        var url = new URL(raw, document.baseURI);
        return (url.origin + url.pathname).replace(/\/+$/, "");
      } catch (e) {
        throw new WidgetError("bad_server", "The avatar's server address is not valid.");
      }
    }

    /**
     * The ICE servers for the next call: the `ice-servers` attribute when set, else those
     * the token endpoint passed along, else GET /v1/ice-servers (same auth as the call).
     * Without any (none configured, an older service) the call uses host candidates.
     */
    async _iceServers() {
      var raw = this.getAttribute("ice-servers");
      if (raw) {
        try {
          var list = JSON.parse(raw);
          if (Array.isArray(list)) return list;
        } catch (e) {
          /* reported below */
        }
        console.warn("gwm-avatar: ice-servers is not a JSON list; ignoring it");
      }
      if (this._tokenIce) return this._tokenIce;
      var headers = {};
      if (this._token) headers.Authorization = "Bearer " + this._token;
      var abort = window.AbortController ? new AbortController() : null;
      var timer = setTimeout(function () {
        if (abort) abort.abort();
      }, ICE_FETCH_TIMEOUT_MS);
      try {
        var resp = await fetch(this._server + "/v1/ice-servers", {
          method: "GET",
          mode: "cors",
          cache: "no-store",
          headers: headers,
          signal: abort ? abort.signal : undefined,
        });
        if (!resp.ok) {
          // Not offered (404), refused or busy: the session request will say why, if at all.
          if (resp.status !== 404) console.warn("gwm-avatar: no ICE servers, HTTP " + resp.status);
          return [];
        }
        var body = await resp.json();
        return body && Array.isArray(body.ice_servers) ? body.ice_servers : [];
      } catch (e) {
        return []; // unreachable or refused by CORS: the session request reports it
      } finally {
        clearTimeout(timer);
      }
    }

    // The browser's processing of the microphone: echo cancellation only by default, so
    // the avatar does not hear itself. Noise suppression and auto gain distort speech
    // for the service's recognizer (more words misheard than over a plain aiortc call:
    // benchmarks/RESULTS.md, "Chromium vs aiortc hearing"); `audio-processing="on"`
    // turns all three on.
    _audioConstraints() {
      var raw = (this.getAttribute("audio-processing") || DEFAULT_AUDIO_PROCESSING)
        .trim()
        .toLowerCase();
      var all = raw === "on" || raw === "true" || raw === "";
      var none = raw === "off" || raw === "false" || raw === "none";
      var want = function (name) {
        return all || (!none && raw.split(/[\s,]+/).indexOf(name) >= 0);
      };
      return {
        echoCancellation: want("echo-cancellation"),
        noiseSuppression: want("noise-suppression"),
        autoGainControl: want("auto-gain-control"),
      };
    }

    async _microphone() {
      if (this._mic && this._mic.getAudioTracks().some(function (t) {
        return t.readyState === "live";
      })) {
        return this._mic;
      }
      if (this._micRefused) return null;
      var note = null;
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        note = new WidgetError("mic_unavailable", TEXT.micInsecure);
      } else {
        try {
          this._mic = await navigator.mediaDevices.getUserMedia({
            audio: this._audioConstraints(),
            video: false,
          });
          this._applyMute();
          return this._mic;
        } catch (err) {
          var name = err && err.name;
          note =
            name === "NotAllowedError" || name === "SecurityError"
              ? new WidgetError("mic_denied", TEXT.micDenied)
              : new WidgetError("mic_unavailable", TEXT.micMissing);
        }
      }
      // Carry on without a microphone: the person can still type.
      this._micRefused = true;
      this._mic = null;
      this._fail(note, true);
      return null;
    }

    async _fetchToken() {
      this._tokenIce = null;
      var endpoint = this.getAttribute("token-endpoint");
      if (!endpoint) return null;
      var resp;
      try {
        resp = await fetch(new URL(endpoint, document.baseURI).href, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ avatar: this.getAttribute("avatar") || "default" }),
        });
      } catch (e) {
        throw new WidgetError("token_failed", TEXT.tokenFailed);
      }
      if (resp.status === 401 || resp.status === 403) {
        throw new WidgetError("not_allowed", TEXT.notAllowed);
      }
      var body = null;
      try {
        body = resp.ok ? await resp.json() : null;
      } catch (e) {
        body = null;
      }
      if (!body || typeof body.token !== "string" || !body.token) {
        throw new WidgetError("token_failed", TEXT.tokenFailed);
      }
      // A backend may pass on the ice_servers of POST /v1/tokens: then no extra request.
      var ice = body.ice_servers;
      this._tokenIce = Array.isArray(ice) && ice.length ? ice : null;
      return body.token;
    }

    async _api(method, path, body, keepalive) {
      var headers = {};
      if (body) headers["Content-Type"] = "application/json";
      if (this._token) headers.Authorization = "Bearer " + this._token;
      var init = { method: method, mode: "cors", headers: headers, keepalive: Boolean(keepalive) };
      if (body) init.body = JSON.stringify(body);
      try {
        return await fetch(this._server + path, init);
      } catch (err) {
        if (keepalive) throw err;
        // A network error hides why: reachable but refused by CORS, or not reachable.
        throw (await this._reachable())
          ? new WidgetError("not_allowed", TEXT.notAllowed)
          : new WidgetError("unreachable", TEXT.unreachable);
      }
    }

    async _reachable() {
      try {
        await fetch(this._server + "/healthz", { mode: "no-cors", cache: "no-store" });
        return true;
      } catch (e) {
        return false;
      }
    }

    async _refusal(resp) {
      var err = await readError(resp);
      if (resp.status === 503) {
        var wait = retryAfter(resp);
        return err.code === "not_ready"
          ? new WidgetError("starting", TEXT.starting(wait))
          : new WidgetError("busy", TEXT.busy(wait));
      }
      if (resp.status === 429) {
        return new WidgetError(err.code || "rate_limited", TEXT.tooMany(retryAfter(resp)));
      }
      if (resp.status === 401 || resp.status === 403) {
        return new WidgetError("not_allowed", TEXT.notAllowed);
      }
      return new WidgetError(err.code || "connect_failed", err.message || TEXT.failed);
    }

    // --- events from the service ------------------------------------------------------

    _onEvent(raw) {
      var msg;
      try {
        msg = JSON.parse(raw);
      } catch (e) {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "state") {
        this._ui.badge.textContent = STATE_LABEL[msg.state] || String(msg.state);
        this._emit("state", { state: msg.state });
      } else if (msg.type === "user_transcript") {
        if (!this._micRefused) this._showMessage("", false); // a new turn: old news goes
        this._caption("user", "You", msg.text);
        this._emit("transcript", { text: msg.text, turnId: msg.turn_id });
      } else if (msg.type === "assistant_text") {
        this._replyPiece(msg);
      } else if (msg.type === "turn_metrics") {
        var detail = {};
        Object.keys(msg).forEach(function (k) {
          if (k !== "type") detail[k] = msg[k];
        });
        this._emit("metrics", detail);
      } else if (msg.type === "error") {
        this._fail(new WidgetError(msg.code || "server_error", msg.message || TEXT.failed), true);
      } else if (msg.type === "closing") {
        // The service is ending this call on purpose (idle, time limit, shutdown): no reconnect.
        this._plannedEnd = msg.reason || "closed by server";
      }
    }

    _replyPiece(msg) {
      var turn = msg.turn_id;
      var entry = this._replies.get(turn);
      if (!entry) {
        entry = { text: "", line: this._caption("avatar", "Avatar", "") };
        this._replies.set(turn, entry);
      }
      if (msg.final) {
        entry.text = String(msg.text || "");
        entry.line.lastChild.textContent = entry.text + (msg.interrupted ? " —" : "");
        this._replies.delete(turn);
        this._emit("reply", {
          text: entry.text,
          final: true,
          interrupted: Boolean(msg.interrupted),
          turnId: turn,
        });
      } else {
        entry.text += String(msg.text || "");
        entry.line.lastChild.textContent = entry.text;
        this._emit("reply", { text: entry.text, delta: msg.text, final: false, turnId: turn });
      }
      this._ui.captions.scrollTop = this._ui.captions.scrollHeight;
    }

    // --- the view ------------------------------------------------------------------------

    _setPhase(phase) {
      this._phase = phase;
      var ui = this._ui;
      var live = phase === "live";
      var idle = phase === "idle";
      ui.launch.hidden = live;
      ui.launch.disabled = !idle;
      ui.launch.textContent = phase === "connecting" ? TEXT.connecting : TEXT.launch;
      ui.stage.hidden = idle;
      ui.mute.hidden = !live;
      ui.mute.disabled = !this._mic;
      ui.stop.hidden = !live;
      ui.hangup.hidden = idle;
      ui.form.hidden = !live;
      ui.captions.hidden = idle && !ui.captions.firstChild;
      if (phase === "connecting") ui.badge.textContent = TEXT.connecting;
      if (live) {
        ui.badge.textContent = STATE_LABEL.listening;
        if (!this._micRefused) this._showMessage("", false);
      }
      if (idle) this._replies.clear();
      this.setAttribute("aria-busy", phase === "connecting" ? "true" : "false");
    }

    _applyMute() {
      var muted = this.muted;
      if (this._mic) {
        this._mic.getAudioTracks().forEach(function (t) {
          t.enabled = !muted;
        });
      }
      this._ui.mute.textContent = muted ? "Unmute" : "Mute";
      this._ui.mute.setAttribute("aria-pressed", muted ? "true" : "false");
      this._ui.mute.setAttribute("aria-label", muted ? "Unmute the microphone" : "Mute the microphone");
    }

    _caption(kind, who, text) {
      var box = this._ui.captions;
      var line = document.createElement("p");
      line.className = "line " + kind;
      var label = document.createElement("span");
      label.className = "who";
      label.textContent = who + ":";
      var body = document.createElement("span");
      body.textContent = text;
      line.appendChild(label);
      line.appendChild(body);
      box.appendChild(line);
      while (box.childNodes.length > MAX_CAPTIONS) box.removeChild(box.firstChild);
      box.hidden = false;
      box.scrollTop = box.scrollHeight;
      return line;
    }

    _clearCaptions() {
      this._ui.captions.textContent = "";
      this._replies.clear();
    }

    _showMessage(text, isError) {
      var msg = this._ui.msg;
      msg.setAttribute("aria-live", isError ? "assertive" : "polite");
      msg.classList.toggle("error", Boolean(isError));
      msg.textContent = text;
      msg.hidden = !text;
    }

    _fail(err, keepGoing) {
      this._showMessage(err.message, true);
      if (!keepGoing && this._phase === "idle") this._ui.launch.textContent = TEXT.retry;
      this._emit("error", { code: err.code, message: err.message });
    }

    _emit(type, detail) {
      this.dispatchEvent(new CustomEvent(type, { detail: detail }));
    }
  }

  window.customElements.define(TAG, GwmAvatarElement);
})();
