"""pynetbox, unchanged, through nginx terminating TLS in front of `nbtoken serve`.

pynetbox follows the `next` links the server returns. Before nbtoken took the scheme from
the trusted proxy, they were `http://`, and from page two on pynetbox sent its token in
cleartext to the TLS port (nginx answers that with a 400). Environment: NB_URL (https),
NB_USER, NB_PASSWORD, NB_CA (the self-signed certificate).
"""
import os

import pynetbox

from pycheck import check


url, user, password = os.environ["NB_URL"], os.environ["NB_USER"], os.environ["NB_PASSWORD"]
nb = pynetbox.api(url)
nb.http_session.verify = os.environ["NB_CA"]

tok = nb.create_token(user, password)
check("create_token over TLS", tok.version == 2, repr(dict(tok)))
me = nb.users.users.get(username=user)
for i in range(6):
    nb.users.tokens.create(user=me.id, description=f"page filler {i}")

total = nb.users.tokens.count()
check("several pages at limit=2", total >= 8, total)
seen = list(nb.users.tokens.all(limit=2))
check("every page fetched through TLS", len(seen) == total, f"{len(seen)} of {total}")
check("ids are distinct", len({t.id for t in seen}) == total)
urls = [t.url for t in seen]
check("record urls are https", all(u.startswith(url + "/api/users/tokens/") for u in urls), urls[:3])
check("nested user urls are https", all(t.user.url.startswith(url + "/") for t in seen))
page = nb.http_session.get(f"{url}/api/users/tokens/?limit=2", headers={"Authorization": f"Bearer {nb.token}"}).json()
check("next is https on the same host and port", page["next"].startswith(url + "/api/users/tokens/?"), page["next"])
print("pynetbox-tls: all checks passed")
