#!/usr/bin/python3
"""lt-metadata.py MAGNET HOST:PORT...: a python-libtorrent session given the magnet and these
peers only (no DHT, tracker, LSD); prints seconds from session start to verified metadata."""
import sys, time
t0 = time.time()
import libtorrent as lt
s = lt.session({
    'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
    'enable_natpmp': False, 'dht_bootstrap_nodes': '', 'allow_multiple_connections_per_ip': True,
    'enable_incoming_utp': False, 'enable_outgoing_utp': False, 'alert_mask': 0,
})
p = lt.parse_magnet_uri(sys.argv[1])
p.save_path = '/tmp'
p.flags |= lt.torrent_flags.upload_mode  # metadata only: no file is written
h = s.add_torrent(p)
t1 = time.time()
for peer in sys.argv[2:]:
    host, port = peer.rsplit(':', 1)
    h.connect_peer((host, int(port)))
while not h.status().has_metadata:
    if time.time() - t0 > 60:
        print('timeout', file=sys.stderr)
        sys.exit(1)
    time.sleep(0.002)
print('%.4f %.4f' % (time.time() - t0, time.time() - t1), flush=True)
