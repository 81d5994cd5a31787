/* global document, window, fetch, localStorage, location, history, URLSearchParams */
// Herald's demo page: plain JavaScript, no build step. Everything Herald-specific
// is the client import below and the handful of calls on `client`.
import { createHeraldClient } from '/herald-client.js';

const $ = (id) => document.getElementById(id);
const SHARE_KEY = 'herald-demo.share';

/** Every event handed to this page, in order: for the console (and the browser tests). */
const received = [];
window.heraldDemo = { received };

let user;
let client;
let unread = 0;
const jobs = new Map();

// ---- the Herald client ---------------------------------------------------

function connect(resumeFrom) {
  client?.close();
  client = createHeraldClient({
    url: '/events',
    share: sharing(),
    // A client made again (the shared-tab toggle) resumes where the last one stopped.
    lastEventId: resumeFrom,
    onStatus: showStatus,
    onReplaced: () => ($('replaced').hidden = false),
    onGap: () => notify({ kind: 'system', title: 'Some events may be missing', text: 'The stream could not replay everything since this tab was last connected.' }),
    // The token in the cookie expired (or was refused): sign in again with the same name.
    onAuthExpired: () => signIn(user),
  });
  client.on('message', (data, meta) => {
    received.push({ id: meta.id, event: meta.event, data });
    notify({ id: meta.id, kind: 'message', title: data.fromUserId, text: data.text });
  });
  client.on('job.progress', (data, meta) => {
    received.push({ id: meta.id, event: meta.event, data });
    showJob(data);
    if (data.done) notify({ id: meta.id, kind: 'job', title: 'Job finished', text: `${data.label}: done.` });
  });
  window.herald = client; // try herald.status, herald.role, herald.lastEventId in the console
  showStatus(client.status, client.role);
}

function showStatus(status, role) {
  const labels = { connecting: 'Connecting…', open: 'Live', reconnecting: 'Reconnecting…', unauthorized: 'Signing in again…', replaced: 'Paused', closed: 'Closed' };
  const roles = { leader: ' · leader tab', follower: ' · via leader tab', solo: '' };
  $('status').dataset.status = status;
  $('status-text').textContent = (labels[status] ?? status) + (roles[role] ?? '');
  if (status !== 'replaced') $('replaced').hidden = true;
  $('last-id').textContent = client?.lastEventId ?? '—';
}

// ---- notifications and the unread badge ----------------------------------

function notify({ id, kind, title, text }) {
  const item = document.createElement('li');
  item.className = `item ${kind} unread`;
  if (id) item.dataset.eventId = id;
  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  avatar.textContent = kind === 'message' ? title.slice(0, 1).toUpperCase() : kind === 'job' ? '✓' : '!';
  const body = document.createElement('div');
  body.className = 'body';
  const head = document.createElement('div');
  head.className = 'head';
  const who = document.createElement('strong');
  who.textContent = title;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  head.append(who, time);
  const line = document.createElement('p');
  line.textContent = text;
  body.append(head, line);
  item.append(avatar, body);
  $('feed').prepend(item);
  $('empty').hidden = true;
  setUnread(unread + 1);
  $('last-id').textContent = client?.lastEventId ?? '—';
}

function setUnread(count) {
  unread = count;
  $('unread').hidden = count === 0;
  $('unread').textContent = count > 99 ? '99+' : String(count);
  document.title = count > 0 ? `(${count}) Herald demo` : 'Herald demo';
}

$('mark-read').addEventListener('click', () => {
  for (const item of document.querySelectorAll('#feed .unread')) item.classList.remove('unread');
  setUnread(0);
});

// ---- job progress --------------------------------------------------------

function showJob({ jobId, percent, label, done }) {
  let row = jobs.get(jobId);
  if (!row) {
    row = document.createElement('div');
    row.className = 'job';
    row.innerHTML = '<div class="job-head"><span class="job-label"></span><span class="job-pct"></span></div><progress max="100"></progress>';
    row.querySelector('.job-label').textContent = `${label} · ${jobId}`;
    jobs.set(jobId, row);
    $('jobs').prepend(row);
  }
  row.querySelector('progress').value = percent;
  row.querySelector('.job-pct').textContent = done ? 'done' : `${percent}%`;
  row.classList.toggle('done', Boolean(done));
}

$('start-job').addEventListener('click', () => void send({ kind: 'job' }));

// ---- sending through the publish path ------------------------------------

async function send(body) {
  const response = await fetch('/dev/send', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.message ?? `HTTP ${response.status}`);
  return answer;
}

$('send-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const to = $('to').value.trim();
  const result = $('send-result');
  result.className = 'result';
  result.textContent = 'Sending…';
  try {
    const answer = await send({ kind: 'message', to, text: $('text').value });
    // The publish answer says who was online: a chat app would e-mail the others.
    result.textContent = answer.online > 0 ? `Delivered to ${to}.` : `${to} is offline; they get it on their next connect.`;
    result.classList.add('ok');
    $('text').value = '';
  } catch (error) {
    result.textContent = error.message;
    result.classList.add('bad');
  }
});

// ---- shared-tab mode -----------------------------------------------------

function sharing() {
  const asked = new URLSearchParams(location.search).get('share');
  if (asked === '1' || asked === '0') localStorage.setItem(SHARE_KEY, asked);
  return localStorage.getItem(SHARE_KEY) === '1';
}

$('share').addEventListener('change', () => {
  localStorage.setItem(SHARE_KEY, $('share').checked ? '1' : '0');
  if (location.search.includes('share=')) history.replaceState(null, '', location.pathname);
  connect(client?.lastEventId);
});

// Every tab of the origin follows the toggle, so tabs never mix the two modes.
window.addEventListener('storage', (event) => {
  if (event.key !== SHARE_KEY || !user) return;
  $('share').checked = event.newValue === '1';
  connect(client?.lastEventId);
});

// ---- "Use here" ----------------------------------------------------------

$('use-here').addEventListener('click', () => {
  $('replaced').hidden = true;
  client.takeOver();
});

// ---- dev sign-in (the cookie is HttpOnly: this page never sees the token) -

async function signIn(name) {
  const response = await fetch('/dev/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: name }) });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).message ?? `HTTP ${response.status}`);
  return (await response.json()).user;
}

function enter(name) {
  user = name;
  $('me').textContent = name;
  $('signin').hidden = true;
  $('session').hidden = false;
  $('app').hidden = false;
  $('share').checked = sharing();
  connect();
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('signin-error').textContent = '';
  try {
    enter(await signIn($('user').value.trim()));
  } catch (error) {
    $('signin-error').textContent = error.message;
  }
});

$('logout').addEventListener('click', async () => {
  client?.close();
  client = undefined;
  user = undefined;
  await fetch('/dev/logout', { method: 'POST' });
  location.reload();
});

// `{user: null}` when nobody is signed in (or the session expired): then show the sign-in form.
const session = await (await fetch('/dev/me')).json();
if (typeof session.user === 'string') {
  enter(session.user);
} else {
  $('signin').hidden = false;
}
