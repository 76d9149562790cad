/* tinbao demo page: phones that show the emulator's chats as Telegram would, over the control
 * API (docs/emulator.md). Everything a phone does is a control-API call made as that phone's
 * user; everything it shows comes from transcripts and the server-sent event stream. */

import { Phone } from "./phone.js";
import { TIME, api, h } from "./util.js";
import { ZaloPhone } from "./zalo.js";

const DEFAULT_CONFIG = {
  bot: { username: null, name: "Bot" },
  phones: [
    {
      key: "user",
      role: "Người dùng",
      user: { id: 1001, first_name: "Người dùng" },
      chat_id: 1001,
      chat_title: "Bot",
      kind: "private",
    },
  ],
  extra_citizens: { first_id: 2001, names: [] },
  places: [{ label: "Hà Nội", latitude: 21.0285, longitude: 105.8542 }],
};


class DemoApp {
  constructor() {
    this.config = DEFAULT_CONFIG;
    this.phones = [];
    this.active = null;
    this.extraCount = 0;
    this.tabs = document.getElementById("tabs");
    this.container = document.getElementById("phones");
    this.connection = document.getElementById("connection");
  }

  async start() {
    try {
      const config = await api("GET", "/web/config.json");
      if (config.phones && config.phones.length) this.config = { ...DEFAULT_CONFIG, ...config };
    } catch (error) {
      this.config = DEFAULT_CONFIG;
    }
    document.getElementById("add-citizen").addEventListener("click", () => this.addCitizen());
    for (const spec of this.config.phones) this.addPhone(spec);
    if (this.config.zalo) this.addZaloPhone(this.config.zalo);
    this.activate(this.phones[0]);
    this.listen();
    await this.loadAll();
    setInterval(() => this.tick(), 15000);
    document.body.dataset.ready = "true";
  }

  async loadAll() {
    let known = new Set();
    try {
      known = new Set((await api("GET", "/control/chats")).chats.map((chat) => chat.id));
    } catch (error) {
      known = new Set();
    }
    await Promise.all(this.phones.map((phone) => phone.load(known.has(phone.chatId))));
  }

  addZaloPhone(spec) {
    const phone = new ZaloPhone(this, spec);
    this.phones.push(phone);
    this.container.append(phone.element);
    phone.tab = h(
      "button",
      { class: "tab", type: "button", role: "tab", onclick: () => this.activate(phone) },
      spec.role,
      h("span", { class: "badge" }),
    );
    this.tabs.append(phone.tab);
    return phone;
  }

  addPhone(spec, options) {
    const phone = new Phone(this, spec, options);
    this.phones.push(phone);
    this.container.append(phone.element);
    phone.tab = h(
      "button",
      { class: "tab", type: "button", role: "tab", onclick: () => this.activate(phone) },
      spec.role,
      h("span", { class: "badge" }),
    );
    this.tabs.append(phone.tab);
    return phone;
  }

  addCitizen() {
    const extra = this.config.extra_citizens || { first_id: 2001, names: [] };
    const index = this.extraCount;
    this.extraCount += 1;
    const id = extra.first_id + index;
    const names = extra.names || [];
    const name = names.length ? names[index % names.length] : `Người dân ${index + 2}`;
    const first = this.config.phones.find((spec) => spec.kind === "private") || {};
    const spec = {
      key: `citizen-${index + 2}`,
      role: `Người dân ${index + 2}`,
      user: { id, first_name: name, language_code: "vi" },
      chat_id: id,
      chat_title: first.chat_title || this.config.bot.name,
      kind: "private",
      hint: "Một người khác: cán bộ vẫn không thấy tên ai.",
    };
    const phone = this.addPhone(spec, { removable: true });
    phone.load(false);
    this.activate(phone);
    phone.element.scrollIntoView({ behavior: "smooth", inline: "center", block: "nearest" });
  }

  removePhone(phone) {
    this.phones = this.phones.filter((other) => other !== phone);
    phone.element.remove();
    phone.tab.remove();
    if (this.active === phone) this.activate(this.phones[0]);
  }

  activate(phone) {
    if (!phone) return;
    this.active = phone;
    for (const other of this.phones) {
      other.element.classList.toggle("active", other === phone);
      other.tab.setAttribute("aria-selected", String(other === phone));
    }
    phone.unread = 0;
    phone.tab.querySelector(".badge").textContent = "";
  }

  noteUnread(phone) {
    if (this.active === phone) return;
    phone.unread += 1;
    phone.tab.querySelector(".badge").textContent = String(phone.unread);
  }

  listen() {
    const source = new EventSource("/control/events");
    source.onopen = () => {
      this.connection.dataset.state = "live";
      this.connection.textContent = "Trực tiếp";
      document.body.dataset.live = "true";
    };
    source.onerror = () => {
      this.connection.dataset.state = "down";
      this.connection.textContent = "Mất kết nối, đang thử lại…";
    };
    source.onmessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      const wanted = this.config.bot.username;
      if (wanted && data.bot && data.bot !== wanted) return;
      if (data.type === "reset") {
        this.loadAll();
        return;
      }
      for (const phone of this.phones) {
        if (phone.chatId !== data.chat_id) continue;
        if (data.type === "delete") phone.drop(data.message_id);
        else if (data.message) phone.apply(data.message);
      }
    };
    // Events missed while reconnecting are picked up from the transcripts.
    source.addEventListener("open", () => {
      if (this.wasDown) this.loadAll();
      this.wasDown = false;
    });
    source.addEventListener("error", () => (this.wasDown = true));
  }

  tick() {
    const now = TIME.format(new Date());
    for (const clock of document.querySelectorAll(".statusbar .clock")) clock.textContent = now;
  }
}

window.demo = new DemoApp();
window.demo.start();
