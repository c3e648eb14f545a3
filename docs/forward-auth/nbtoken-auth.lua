-- nbtoken forward-auth for HAProxy 2.5 and later (core.httpclient; Debian 12's
-- haproxy 2.6 has it, built with Lua 5.3). Loaded by haproxy.cfg beside this file:
--
--   global
--       lua-load /etc/haproxy/nbtoken-auth.lua
--   frontend ...
--       http-request lua.nbtoken-auth http://127.0.0.1:8080/auth/forward
--
-- For each request the action asks nbtoken, with a GET carrying the request's
-- Authorization header and the original method, URI, host and client address
-- (X-Forwarded-Method / -Uri / -Host / -For, always set here from what HAProxy
-- itself saw, never copied from the client). Then:
--   * 2xx: the identity headers nbtoken answered replace any of the same name on
--     the request (a client cannot forge them), and a v1 token's Deprecation /
--     Sunset are kept in txn.nbtoken_deprecation / txn.nbtoken_sunset for
--     haproxy.cfg to add to the response;
--   * anything else (401, 403, 429, 503, 400): the client gets nbtoken's status
--     and JSON body, with its Content-Type, WWW-Authenticate and Retry-After, and
--     the request goes no further;
--   * nbtoken unreachable (HAProxy's httpclient gives up after its connection
--     retries, about 3 s) or an answer that is not nbtoken's: 503 with a JSON
--     detail of its own. Nothing is let through unchecked.

local IDENTITY = {
    "x-nbtoken-user",
    "x-nbtoken-user-id",
    "x-nbtoken-token-id",
    "x-nbtoken-token-version",
    "x-nbtoken-write-enabled",
}

-- Headers of a refusal that the client needs (the challenge, when to retry).
local RELAYED_ON_REFUSAL = { "content-type", "www-authenticate", "retry-after" }

-- How long one check may take, in milliseconds.
local TIMEOUT_MS = 2000

-- HAProxy header tables map a lower-case name to its values, indexed from 0.
local function first(headers, name)
    local values = headers and headers[name]
    if values == nil then
        return nil
    end
    return values[0]
end

local function check(txn, url)
    local sent = {
        ["x-forwarded-method"] = { txn.sf:method() },
        ["x-forwarded-uri"] = { txn.sf:pathq() or "/" },
        ["x-forwarded-for"] = { txn.sf:src() },
    }
    local incoming = txn.http:req_get_headers()
    local authorization = first(incoming, "authorization")
    if authorization ~= nil then
        sent["authorization"] = { authorization }
    end
    local host = first(incoming, "host")
    if host ~= nil then
        sent["x-forwarded-host"] = { host }
    end
    local request_id = txn.sf:unique_id()
    if request_id ~= nil and request_id ~= "" then
        sent["x-request-id"] = { request_id }
    end

    local res = core.httpclient():get({ url = url, headers = sent, timeout = TIMEOUT_MS })
    local status = res and tonumber(res.status) or 0

    if status >= 200 and status < 300 then
        for _, name in ipairs(IDENTITY) do
            local value = first(res.headers, name)
            if value ~= nil then
                txn.http:req_set_header(name, value)
            else
                txn.http:req_del_header(name)
            end
        end
        local deprecation = first(res.headers, "deprecation")
        if deprecation ~= nil then
            txn:set_var("txn.nbtoken_deprecation", deprecation)
        end
        local sunset = first(res.headers, "sunset")
        if sunset ~= nil then
            txn:set_var("txn.nbtoken_sunset", sunset)
        end
        return
    end

    local reply = { headers = {} }
    local content_type = first(res and res.headers, "content-type") or ""
    -- nbtoken's refusals are JSON; anything else (HAProxy's own 503 page when nbtoken
    -- cannot be reached) is not nbtoken's answer.
    if status >= 400 and status < 600 and content_type:find("application/json", 1, true) == 1 then
        reply.status = status
        reply.body = res.body or ""
        for _, name in ipairs(RELAYED_ON_REFUSAL) do
            local value = first(res.headers, name)
            if value ~= nil then
                reply.headers[name] = { value }
            end
        end
    else
        -- No answer from nbtoken, or one it never gives: refuse.
        reply.status = 503
        reply.headers["content-type"] = { "application/json" }
        reply.body = '{"detail": "The token service is unavailable; try again shortly."}\n'
    end
    txn:done(txn:reply(reply))
end

core.register_action("nbtoken-auth", { "http-req" }, check, 1)
