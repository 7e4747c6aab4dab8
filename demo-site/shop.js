// Shop Example, the demo shop: every page is drawn here from the URL, so
// the shop is a handful of static files. Most links are ordinary page
// loads; /guides is a single-page section (history.pushState). The catalog
// is the traffic generator's, so real and synthetic visitors browse the same
// products at the same URLs.
//
// The tracker is the one snippet a site adds, here with the shop's calls
// for search, cart, checkout and purchase. Clicks and page views (including
// the single-page section's) are captured automatically.
import { CATEGORIES, CURRENCY, PRODUCTS, SEARCHES } from "/demo/catalog.js";
import * as clickstream from "/t/clickstream.js";

const SITE = "Shop Example";
const askFirst = read("shop_privacy") === "ask";
clickstream.init({ endpoint: "/v1/batch", siteId: "shop-1", consent: askFirst ? "opt-in" : "opt-out" });

// ---- small helpers

function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // A shop without storage still works, with a cart that lasts one page.
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const money = (n) => new Intl.NumberFormat("en-IE", { style: "currency", currency: CURRENCY }).format(n);
const capital = (s) => s[0].toUpperCase() + s.slice(1);
const product = (n) => PRODUCTS.find((p) => p.n === n);
const page = document.getElementById("page");
const HUES = { shoes: 18, apparel: 200, electronics: 260, home: 35, beauty: 330, sports: 140 };

function show(title, html) {
  document.title = title ? `${title} | ${SITE}` : `${SITE} – Everyday things, well made`;
  page.innerHTML = html;
}

// ---- the cart, kept in localStorage as [{ n, quantity }]

function cart() {
  try {
    return (JSON.parse(read("shop_cart")) || []).filter((l) => product(l.n));
  } catch {
    return [];
  }
}

function saveCart(lines) {
  write("shop_cart", JSON.stringify(lines));
  drawCartCount();
}

function drawCartCount() {
  document.getElementById("cart-count").textContent = cart().reduce((sum, l) => sum + l.quantity, 0);
}

// What the tracker's cart and purchase calls take for a product line.
// productName is not a contract prop: it travels as an extra prop, which
// Gold's dim_products reads.
const item = (p, quantity) => ({ productId: p.id, productName: p.name, category: p.category, price: p.price, quantity });

function addToCart(n) {
  const lines = cart();
  const line = lines.find((l) => l.n === n);
  if (line) line.quantity += 1;
  else lines.push({ n, quantity: 1 });
  saveCart(lines);
  clickstream.addToCart(item(product(n), 1));
  const note = document.getElementById(`added-${n}`);
  if (note) note.hidden = false;
}

function removeFromCart(n) {
  const line = cart().find((l) => l.n === n);
  if (!line) return;
  saveCart(cart().filter((l) => l.n !== n));
  clickstream.removeFromCart(item(product(n), line.quantity));
  draw();
}

const total = (lines) => Math.round(lines.reduce((sum, l) => sum + product(l.n).price * l.quantity * 100, 0)) / 100;

// ---- pages

function card(p) {
  return `<article class="card">
    <a href="/p/${p.n}" class="swatch" style="--hue:${HUES[p.category]}" aria-label="${esc(p.name)}"></a>
    <h3><a href="/p/${p.n}">${esc(p.name)}</a></h3>
    <p class="price">${money(p.price)}</p>
    <button type="button" data-add="${p.n}" data-track="add_to_cart">Add to cart</button>
    <p class="added" id="added-${p.n}" hidden>Added ✓</p>
  </article>`;
}

const grid = (products) => `<div class="grid">${products.map(card).join("")}</div>`;

function home() {
  const featured = CATEGORIES.map((c) => PRODUCTS.find((p) => p.category === c));
  show("", `<section class="hero"><h1>Everyday things, well made</h1>
      <p>Shoes, clothes, gadgets and things for the home, shipped free over ${money(50)}.</p>
      <a class="button" href="/c/${CATEGORIES[0]}">Shop ${CATEGORIES[0]}</a></section>
    <h2>Featured</h2>${grid(featured)}`);
}

function category(name) {
  if (!CATEGORIES.includes(name)) return notFound();
  const products = PRODUCTS.filter((p) => p.category === name);
  show(capital(name), `<p class="crumbs"><a href="/">Home</a> › ${esc(capital(name))}</p>
    <h1>${esc(capital(name))}</h1><p>${products.length} products</p>${grid(products)}`);
}

function productPage(n) {
  const p = product(n);
  if (!p) return notFound();
  // The tracker's page view of this page is then a product view.
  for (const [name, content] of [["product_id", p.id], ["product_name", p.name], ["category", p.category]]) {
    const meta = document.createElement("meta");
    meta.name = `clickstream:${name}`;
    meta.content = content;
    document.head.append(meta);
  }
  const related = PRODUCTS.filter((o) => o.category === p.category && o.n !== n).slice(0, 3);
  show(p.name, `<p class="crumbs"><a href="/">Home</a> › <a href="/c/${p.category}">${esc(capital(p.category))}</a> › ${esc(p.name)}</p>
    <section class="product">
      <div class="swatch big" style="--hue:${HUES[p.category]}"></div>
      <div><h1>${esc(p.name)}</h1><p class="price big">${money(p.price)}</p>
        <p>In stock. Delivered in 2–3 working days, returns free for 30 days.</p>
        <button type="button" data-add="${p.n}" data-track="add_to_cart" data-product="${p.id}">Add to cart</button>
        <p class="added" id="added-${p.n}" hidden>Added ✓ <a href="/cart">View cart</a></p></div>
    </section>
    <h2>You may also like</h2>${grid(related)}`);
}

function searchPage() {
  const q = (new URLSearchParams(location.search).get("q") || "").trim();
  document.querySelector(".search input").value = q;
  if (!q) return show("Search", `<h1>Search</h1><p>Type what you are looking for above.</p>`);
  clickstream.search(q);
  const words = q.toLowerCase().split(/\s+/);
  const mapped = SEARCHES.find(([term]) => term === q.toLowerCase())?.[1];
  const found = PRODUCTS.filter((p) => p.category === mapped ||
    words.some((w) => p.name.toLowerCase().includes(w) || p.category.startsWith(w)));
  show(`Search: ${q}`, `<h1>Results for “${esc(q)}”</h1>
    ${found.length ? grid(found) : `<p>Nothing found. Try “${esc(SEARCHES[0][0])}”.</p>`}`);
}

function cartPage() {
  const lines = cart();
  if (!lines.length) return show("Your cart", `<h1>Your cart</h1><p>Your cart is empty. <a href="/">Keep shopping</a></p>`);
  const rows = lines.map((l) => {
    const p = product(l.n);
    return `<tr><td><a href="/p/${p.n}">${esc(p.name)}</a></td><td>${l.quantity}</td><td>${money(p.price * l.quantity)}</td>
      <td><button type="button" class="secondary" data-remove="${p.n}">Remove</button></td></tr>`;
  });
  show("Your cart", `<h1>Your cart</h1><table class="lines"><thead><tr><th>Product</th><th>Qty</th><th>Amount</th><th></th></tr></thead>
    <tbody>${rows.join("")}</tbody><tfoot><tr><td>Total</td><td></td><td>${money(total(lines))}</td><td></td></tr></tfoot></table>
    <p><a class="button" href="/checkout">Checkout</a></p>`);
}

function checkout() {
  const lines = cart();
  if (!lines.length) return show("Checkout", `<h1>Checkout</h1><p>Your cart is empty. <a href="/">Keep shopping</a></p>`);
  clickstream.beginCheckout({ currency: CURRENCY, revenue: total(lines) });
  show("Checkout", `<h1>Checkout</h1>
    <form id="checkout" class="checkout">
      <label>Name <input name="name" autocomplete="name" required></label>
      <label>Email <input name="email" type="email" autocomplete="email" required></label>
      <label>Address <input name="address" autocomplete="street-address" required></label>
      <label>Card number <input name="card" inputmode="numeric" autocomplete="cc-number" required></label>
      <p>Total: <strong>${money(total(lines))}</strong></p>
      <button type="submit">Place order</button>
    </form>`);
  document.getElementById("checkout").addEventListener("submit", (e) => {
    e.preventDefault();
    const order = { id: `o-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, lines };
    write("shop_order", JSON.stringify(order));
    saveCart([]);
    location.href = "/thank-you";
  });
}

function thankYou() {
  let order = null;
  try {
    order = JSON.parse(read("shop_order"));
  } catch {}
  if (!order) return show("Thank you", `<h1>Thank you</h1><p>No recent order. <a href="/">Keep shopping</a></p>`);
  // The purchase is counted once, here, even if the page is reloaded.
  if (!order.tracked) {
    const items = order.lines.map((l) => item(product(l.n), l.quantity));
    clickstream.purchase({ orderId: order.id, currency: CURRENCY, items });
    write("shop_order", JSON.stringify({ ...order, tracked: true }));
  }
  show("Thank you", `<h1>Thank you for your order</h1><p>Order <strong>${esc(order.id)}</strong>,
    ${money(total(order.lines))}, is on its way.</p><p><a class="button" href="/">Continue shopping</a></p>`);
}

function login() {
  show("Sign in", `<h1>Sign in</h1><form id="login" class="checkout">
      <label>Email <input name="email" type="email" autocomplete="email" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button type="submit">Sign in</button></form>`);
  document.getElementById("login").addEventListener("submit", (e) => {
    e.preventDefault();
    // A demo account: the user id is derived from the address, never the address itself.
    const email = new FormData(e.target).get("email").toLowerCase();
    let h = 0;
    for (const c of email) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    clickstream.identify(`u-${h.toString(36)}`);
    location.href = "/";
  });
}

// The single-page section: moving between guides changes the URL with
// history.pushState, without loading a page; the tracker sees each as a
// page view.
const GUIDES = {
  "running-shoes": ["How to choose running shoes", "Road or trail, cushioned or fast: start from where and how far you run."],
  layering: ["Layering for the outdoors", "A base layer that wicks, a warm middle layer, and a shell against wind and rain."],
  "home-coffee": ["Better coffee at home", "Fresh beans, the right grind and water just off the boil."],
};

function guides(slug) {
  const nav = Object.entries(GUIDES).map(([s, [title]]) =>
    `<li><a href="/guides/${s}" data-spa${s === slug ? ' aria-current="page"' : ""}>${esc(title)}</a></li>`).join("");
  if (slug && !GUIDES[slug]) return notFound();
  const [title, body] = slug ? GUIDES[slug] : ["Guides", "Advice from the shop's staff. Pick a guide."];
  show(title, `<div class="guides"><ul>${nav}</ul><article><h1>${esc(title)}</h1><p>${esc(body)}</p>
    ${slug ? `<p><a href="/guides" data-spa>All guides</a></p>` : ""}</article></div>`);
}

function notFound() {
  show("Not found", `<h1>Page not found</h1><p><a href="/">Back to the shop</a></p>`);
}

const ROUTES = [
  [/^\/$/, home],
  [/^\/c\/([a-z]+)$/, (m) => category(m[1])],
  [/^\/p\/(\d+)$/, (m) => productPage(Number(m[1]))],
  [/^\/search$/, searchPage],
  [/^\/cart$/, cartPage],
  [/^\/checkout$/, checkout],
  [/^\/thank-you$/, thankYou],
  [/^\/login$/, login],
  [/^\/guides(?:\/([a-z-]+))?$/, (m) => guides(m[1])],
];

function draw() {
  for (const [pattern, render] of ROUTES) {
    const m = location.pathname.match(pattern);
    if (m) return render(m);
  }
  notFound();
}

// ---- wiring

document.getElementById("categories").innerHTML =
  CATEGORIES.map((c) => `<a href="/c/${c}">${esc(capital(c))}</a>`).join("");

document.addEventListener("click", (e) => {
  const el = e.target instanceof Element ? e.target.closest("[data-add],[data-remove],a[data-spa]") : null;
  if (!el) return;
  if (el.dataset.add) addToCart(Number(el.dataset.add));
  else if (el.dataset.remove) removeFromCart(Number(el.dataset.remove));
  else {
    e.preventDefault();
    history.pushState(null, "", el.getAttribute("href"));
    draw();
  }
});
window.addEventListener("popstate", draw);

document.getElementById("newsletter").addEventListener("submit", (e) => {
  e.preventDefault();
  clickstream.track("newsletter_signup", { placement: "footer" });
  e.target.innerHTML = "<p>Thanks, you are subscribed.</p>";
});

// The consent banner, when the shop asks first (the footer's switch, kept
// in this browser): the tracker then stores and sends nothing before Allow.
const privacySwitch = document.getElementById("privacy-switch");
privacySwitch.textContent = askFirst ? "Stop asking for consent" : "Ask visitors for consent first";
privacySwitch.addEventListener("click", (e) => {
  e.preventDefault();
  write("shop_privacy", askFirst ? null : "ask");
  write("shop_consent", null);
  location.reload();
});
if (askFirst && !read("shop_consent")) {
  const banner = document.getElementById("consent");
  banner.hidden = false;
  const answer = (granted) => {
    write("shop_consent", granted ? "yes" : "no");
    clickstream.consent(granted);
    banner.hidden = true;
  };
  document.getElementById("consent-yes").addEventListener("click", () => answer(true));
  document.getElementById("consent-no").addEventListener("click", () => answer(false));
}

drawCartCount();
draw();
