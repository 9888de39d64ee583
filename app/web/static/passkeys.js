// Passkey ceremonies for Tessera's pages (issue 22): the only script the pages load.
// Served from 'self' under the pages' CSP: no inline script, no eval. Each button names
// its ceremony in data-passkey; the server gives the options and checks every answer.
"use strict";

(function () {
  const notice = document.getElementById("passkey-notice");

  function say(text) {
    // Styled only once shown, so a page has one .notice at a time.
    notice.className = "notice error";
    notice.textContent = text;
    notice.hidden = false;
  }

  async function post(url, csrf, body, method) {
    const response = await fetch(url, {
      method: method || "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json();
    if (!response.ok) {
      throw new Error(answer.message || "The request failed.");
    }
    return answer;
  }

  async function create(csrf, form) {
    const password = form.querySelector("[name=current_password]");
    const body = password ? { current_password: password.value } : {};
    const options = await post("/mfa/passkeys/register/options", csrf, body);
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
    });
    const name = form.querySelector("[name=name]").value || "Passkey";
    await post("/mfa/passkeys", csrf, { credential: credential.toJSON(), name: name });
    window.location.assign("/account?n=passkey_added");
  }

  async function get(csrf, optionsUrl, answerUrl) {
    const options = await post(optionsUrl, csrf);
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
    });
    return post(answerUrl, csrf, { credential: credential.toJSON() });
  }

  const ceremonies = {
    register: (el) => create(el.dataset.csrf, el.closest("form")),
    "step-up": async (el) => {
      await get(el.dataset.csrf, "/mfa/passkeys/step-up/options", "/mfa/passkeys/step-up");
      window.location.assign("/account?n=stepped_up");
    },
    login: async (el) => {
      const answer = await get(el.dataset.csrf, "/login/mfa/passkey/options",
                               "/login/mfa/passkey");
      window.location.assign(answer.redirect);
    },
    remove: async (el) => {
      await post("/mfa/passkeys/" + el.dataset.id, el.dataset.csrf, null, "DELETE");
      window.location.assign("/account?n=passkey_removed");
    },
  };

  document.querySelectorAll("[data-passkey]").forEach((el) => {
    const run = (event) => {
      event.preventDefault();
      if (!window.PublicKeyCredential) {
        say("This browser does not support passkeys.");
        return;
      }
      ceremonies[el.dataset.passkey](el).catch((error) => {
        // A cancelled or timed-out browser prompt is a NotAllowedError: say so plainly.
        say(error.name === "NotAllowedError" ? "The passkey prompt was cancelled." : error.message);
      });
    };
    el.addEventListener(el.tagName === "FORM" ? "submit" : "click", run);
  });
})();
