
-- ------------------------------------------------------------------------------------------------
-- The interpreter: the same in every generated file. Everything above this line is data generated
-- from the codec's tables; nothing below names a field, a layout or a command.
-- ------------------------------------------------------------------------------------------------

-- Wireshark 4.0 embeds Lua 5.2, which has bit32 and no bit operators. Lua 5.3 and later have the
-- operators and may lack bit32: the fallback is compiled only there, so 5.2 never parses it.
local bit = bit32 or load("return { band = function(a, b) return a & b end, "
  .. "bor = function(a, b) return a | b end, bnot = function(a) return ~a & 0xFFFFFFFF end }")()
local band, bor, bnot = bit.band, bit.bor, bit.bnot
local TWO32 = 4294967296

-- An integral number as text without a fraction, whichever Lua.
local function int(n)
  return string.format("%d", n)
end

-- Field descriptors by key ("dma_map.flags"), and the struct key of each.
local FD = {}
for skey, s in pairs(S) do
  s.key = skey
  for _, fd in ipairs(s.fields) do
    FD[fd.key] = fd
  end
end

-- Expert info and field registration, per protocol.
local E = {}
for name, proto in pairs(G.proto) do
  local e = {
    malformed = ProtoExpert.new(name .. ".malformed", "Malformed message",
      expert.group.MALFORMED, expert.severity.ERROR),
    unknown_command = ProtoExpert.new(name .. ".unknown_command", "Unknown command or request type",
      expert.group.UNDECODED, expert.severity.WARN),
    reserved = ProtoExpert.new(name .. ".reserved_not_zero", "Reserved field is not zero",
      expert.group.PROTOCOL, expert.severity.WARN),
    truncated = ProtoExpert.new(name .. ".truncated_record",
      "Record truncated: the stream ended inside this message", expert.group.MALFORMED, expert.severity.WARN),
    error_reply = ProtoExpert.new(name .. ".error_reply", "Error reply",
      expert.group.RESPONSE_CODE, expert.severity.NOTE),
    no_direction = ProtoExpert.new(name .. ".no_direction",
      "Direction unknown (the record has no exported-PDU P2P direction)", expert.group.PROTOCOL, expert.severity.WARN),
  }
  E[name] = e
  local experts = {}
  for _, x in pairs(e) do experts[#experts + 1] = x end
  proto.experts = experts

  local fields = {}
  local function add(f) if f then fields[#fields + 1] = f end end
  for _, s in pairs(S) do
    if s.proto == name then
      add(s.pf)
      for _, fd in ipairs(s.fields) do
        add(fd.pf)
        if fd.parts then
          for _, part in ipairs(fd.parts) do add(part.pf) end
        end
      end
    end
  end
  for _, f in pairs(G.X[name]) do add(f) end
  if name == "vfio_user" then
    for _, d in pairs(G.DATA) do add(d.pf) end
  end
  proto.fields = fields
end

local function field_or_nil(name)
  local ok, f = pcall(Field.new, name)
  if ok then return f end
  return nil
end
local f_comment = field_or_nil("frame.comment")
local f_iface = field_or_nil("frame.interface_id")
local f_time = field_or_nil("frame.time")

-- ------------------------------------------------------------------------------------------------
-- Values: numbers for fields up to 32 bits, UInt64 for 64-bit fields, nil for byte arrays.

local function tonum(v)
  if type(v) == "number" then return v end
  return v:tonumber()
end

local function split64(v)
  if type(v) == "number" then return v % TWO32, math.floor(v / TWO32) end
  return v:lower(), v:higher()
end

local function masked(v, mlo, mhi)
  local lo, hi = split64(v)
  return band(lo, mlo) + band(hi, mhi) * TWO32
end

local function dec(v)
  if type(v) == "number" then return string.format("%d", v) end
  return tostring(v)
end

local function hex(v)
  if type(v) == "number" then return string.format("0x%x", v) end
  local h = v:tohex():gsub("^0+", "")
  if h == "" then h = "0" end
  return "0x" .. h
end

local function read_field(tvb, base, fd)
  local r = tvb(base + fd.off, fd.size)
  local k = fd.kind
  if k == "bytes" then return nil, r end
  if k == "u8" then return r:uint(), r end
  if k == "u64" then
    if fd.le then return r:le_uint64(), r end
    return r:uint64(), r
  end
  if k == "i32" then
    if fd.le then return r:le_int(), r end
    return r:int(), r
  end
  if fd.le then return r:le_uint(), r end
  return r:uint(), r
end

-- "READ|WRITE", "MIG_DEVICE_STATE|SET", "0": the parts of a flags word, as vfu-dump prints them.
local function flags_text(parts, v)
  local out = {}
  local clo, chi = 0, 0
  local lo, hi = split64(v)
  for _, p in ipairs(parts) do
    clo, chi = bor(clo, p.mlo), bor(chi, p.mhi)
    if p.kind == "bit" then
      if band(lo, p.mlo) == p.mlo and band(hi, p.mhi) == p.mhi then out[#out + 1] = p.name end
    else
      local x = masked(v, p.mlo, p.mhi) / 2 ^ p.shift
      local n = p.kind == "value" and p.vs and p.vs[x]
      if n then
        out[#out + 1] = n
      else
        out[#out + 1] = p.name .. "=" .. string.format("%d", x)
      end
    end
  end
  local rlo, rhi = band(lo, bnot(clo)), band(hi, bnot(chi))
  if rhi ~= 0 then
    out[#out + 1] = string.format("0x%x%08x", rhi, rlo)
  elseif rlo ~= 0 then
    out[#out + 1] = string.format("0x%x", rlo)
  end
  if #out == 0 then return "0" end
  return table.concat(out, "|")
end

local function named(vs, v)
  if vs and v ~= nil then return vs[tonum(v)] end
  return nil
end

-- A field's value as vfu-dump's one-line summary shows it: 0x1000, READ|WRITE, EINVAL (22), BAR0 (0).
local function value_text(fd, v, r)
  if v == nil then
    if fd.show == "text" then return '"' .. r:stringz() .. '"' end
    return r:bytes():tohex(true)
  end
  local s = fd.show
  if s == "dec" or s == "reserved" then return dec(v) end
  if s == "flags" and fd.parts then return flags_text(fd.parts, v) end
  if s == "enum" or s == "errno" then
    local n = named(fd.vs, v)
    if n then return n .. " (" .. dec(v) .. ")" end
    return dec(v)
  end
  if s == "command" then
    local n = G.CMD_SHORT[tonum(v)]
    if n then return n .. " (" .. dec(v) .. ")" end
    return dec(v)
  end
  return hex(v)
end

local function all_zero(r)
  return not r:bytes():tohex():find("[^0]")
end

-- ------------------------------------------------------------------------------------------------
-- Walking a message: ctx holds the tvb, the tree, the values read so far (by field key), the position
-- and the end of the message, and the one-line summary being built.

local function new_ctx(tvb, pinfo, root, proto_name)
  return {
    tvb = tvb, pinfo = pinfo, tree = root, E = E[proto_name],
    vals = {}, pos = 0, limit = tvb:len(), sum = {}, arr = nil,
    failed = false, error = nil, stop = false,
  }
end

local function flush(ctx)
  if ctx.arr then
    ctx.sum[#ctx.sum + 1] = ctx.arr.name .. "[" .. int(ctx.arr.n) .. "]"
    ctx.arr = nil
  end
end

local function fail(ctx, rule, text, at)
  local r = G.RULE[rule]
  local msg = string.format("%s at offset 0x%x [%s %s]", text, at, r.id, r.spec)
  ctx.failed = true
  if not ctx.error then ctx.error = msg end
  if at < ctx.tvb:len() then
    ctx.tree:add_tvb_expert_info(ctx.E.malformed, ctx.tvb(at), msg)
  else
    ctx.tree:add_proto_expert_info(ctx.E.malformed, msg)
  end
  return false
end

-- Adds struct `s` at message offset `off` under `parent`; `index` for array elements; `quiet` for
-- views that are not parts of their own (no summary, no values).
local function add_struct(ctx, parent, s, off, index, quiet)
  local tvb = ctx.tvb
  local item = parent:add(s.pf, tvb(off, s.size))
  if index then item:append_text(" [" .. int(index) .. "]") end
  local keys = false
  if not quiet and s.key ~= G.HDR.struct then
    if index then
      if ctx.arr and ctx.arr.name == s.name then
        ctx.arr.n = index + 1
      else
        flush(ctx)
        ctx.arr = { name = s.name, n = index + 1 }
      end
    else
      flush(ctx)
      keys = true
    end
  end
  for _, fd in ipairs(s.fields) do
    local v, r = read_field(tvb, off, fd)
    local fi
    if fd.show == "text" then
      fi = item:add(fd.pf, r, r:stringz())
    elseif fd.le then
      fi = item:add_le(fd.pf, r)
    else
      fi = item:add(fd.pf, r)
    end
    if not quiet then ctx.vals[fd.key] = v end
    if fd.show == "errno" and v == 0 then fi:set_text(fd.name .. ": 0") end
    if fd.parts then
      for _, p in ipairs(fd.parts) do
        if p.pf then
          if fd.le then fi:add_le(p.pf, r) else fi:add(p.pf, r) end
        end
      end
    end
    if fd.show == "reserved" and not all_zero(r) then
      fi:add_proto_expert_info(ctx.E.reserved)
    end
    local views = G.VIEWS[fd.key]
    if views then
      for _, vk in ipairs(views) do
        local vs = S[vk]
        if vs.size <= fd.size then add_struct(ctx, fi, vs, off + fd.off, nil, true) end
      end
    end
    if keys and fd.summary and (ctx.reply or not fd.reply_only) then
      ctx.sum[#ctx.sum + 1] = fd.name .. "=" .. value_text(fd, v, r)
    end
  end
  return item
end

local function add_data(ctx, kind, off, len)
  if len <= 0 then return end
  local d = G.DATA[kind]
  local r = ctx.tvb(off, len)
  flush(ctx)
  if d.text then
    ctx.tree:add_packet_field(d.pf, r, ENC_UTF_8)
    if d.word then ctx.sum[#ctx.sum + 1] = d.word .. "=" .. r:string(ENC_UTF_8) end
  else
    ctx.tree:add(d.pf, r)
    if d.word then ctx.sum[#ctx.sum + 1] = d.word .. "=" .. int(len) .. "B" end
  end
end

-- ------------------------------------------------------------------------------------------------
-- The capabilities JSON of VERSION: RFC 8259 syntax, one object at the top, nesting limited as in the
-- codec's parser. Returns nil, or the 0-based offset of the error, the rule and the reason.

local EOF = "unexpected end of input"

local function utf8_valid_up_to(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then
      i = i + 1
    else
      local len, lo, hi
      if c >= 0xC2 and c <= 0xDF then len, lo, hi = 2, 0x80, 0xBF
      elseif c == 0xE0 then len, lo, hi = 3, 0xA0, 0xBF
      elseif c == 0xED then len, lo, hi = 3, 0x80, 0x9F
      elseif c >= 0xE1 and c <= 0xEF then len, lo, hi = 3, 0x80, 0xBF
      elseif c == 0xF0 then len, lo, hi = 4, 0x90, 0xBF
      elseif c >= 0xF1 and c <= 0xF3 then len, lo, hi = 4, 0x80, 0xBF
      elseif c == 0xF4 then len, lo, hi = 4, 0x80, 0x8F
      else return i - 1 end
      local c2 = s:byte(i + 1)
      if not c2 or c2 < lo or c2 > hi then return i - 1 end
      for k = 2, len - 1 do
        local ck = s:byte(i + k)
        if not ck or ck < 0x80 or ck > 0xBF then return i - 1 end
      end
      i = i + len
    end
  end
  return n
end

local function json_syntax(s)
  local n = #s
  local i = 1
  local function stop(at, reason, rule)
    error({ at = at - 1, reason = reason, rule = rule or "json_syntax" }, 0)
  end
  local function stop_or_eof(reason)
    if i > n then stop(i, EOF) else stop(i, reason) end
  end
  local function ws()
    while i <= n do
      local c = s:byte(i)
      if c == 32 or c == 9 or c == 10 or c == 13 then i = i + 1 else return end
    end
  end
  local function digit(c) return c and c >= 48 and c <= 57 end
  local function hexdigit(c)
    return c and ((c >= 48 and c <= 57) or (c >= 65 and c <= 70) or (c >= 97 and c <= 102))
  end
  local value
  local function string_()
    i = i + 1
    while true do
      local c = s:byte(i)
      if c == nil then stop(i, "unterminated string") end
      if c == 34 then i = i + 1; return end
      if c == 92 then
        local e = s:byte(i + 1)
        if e == nil then stop(i + 1, "unterminated string") end
        if e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 or e == 114 or e == 116 then
          i = i + 2
        elseif e == 117 then
          local k = 0
          while k < 4 and hexdigit(s:byte(i + 2 + k)) do k = k + 1 end
          if k == 4 then
            i = i + 6
          elseif i + 2 + k > n then
            stop(n + 1, "unterminated string")
          else
            stop(i, "invalid \\u escape (needs 4 hex digits)")
          end
        else
          stop(i, "invalid escape")
        end
      elseif c < 32 then
        stop(i, "control character in string")
      else
        i = i + 1
      end
    end
  end
  local function digits()
    if not digit(s:byte(i)) then stop_or_eof("invalid number (expected a digit)") end
    local start = i
    while digit(s:byte(i)) do i = i + 1 end
    return start
  end
  local function number()
    if s:byte(i) == 45 then i = i + 1 end
    local start = digits()
    if i - start > 1 and s:byte(start) == 48 then stop(start, "leading zero in number") end
    if s:byte(i) == 46 then i = i + 1; digits() end
    local c = s:byte(i)
    if c == 101 or c == 69 then
      i = i + 1
      c = s:byte(i)
      if c == 43 or c == 45 then i = i + 1 end
      digits()
    end
  end
  local function literal()
    local rest = s:sub(i)
    for _, w in ipairs({ "true", "false", "null" }) do
      if rest:sub(1, #w) == w then i = i + #w; return end
      if w:sub(1, #rest) == rest then stop(n + 1, EOF) end
    end
    stop(i, "invalid literal (expected true, false or null)")
  end
  local function open(depth)
    if depth >= G.MAX_JSON_DEPTH then
      stop(i, "nesting deeper than " .. int(G.MAX_JSON_DEPTH), "json_too_large")
    end
    return depth + 1
  end
  local function object(depth)
    local inner = open(depth)
    i = i + 1
    ws()
    if s:byte(i) == 125 then i = i + 1; return end
    while true do
      if s:byte(i) ~= 34 then stop_or_eof("expected a string key") end
      string_()
      ws()
      if s:byte(i) ~= 58 then stop_or_eof("expected ':' after a key") end
      i = i + 1
      ws()
      value(inner)
      ws()
      local c = s:byte(i)
      if c == 44 then
        i = i + 1
        ws()
      elseif c == 125 then
        i = i + 1
        return
      else
        stop_or_eof("expected ',' or '}' after a member")
      end
    end
  end
  local function array(depth)
    local inner = open(depth)
    i = i + 1
    ws()
    if s:byte(i) == 93 then i = i + 1; return end
    while true do
      value(inner)
      ws()
      local c = s:byte(i)
      if c == 44 then
        i = i + 1
        ws()
      elseif c == 93 then
        i = i + 1
        return
      else
        stop_or_eof("expected ',' or ']' after an element")
      end
    end
  end
  value = function(depth)
    local c = s:byte(i)
    if c == 123 then object(depth)
    elseif c == 91 then array(depth)
    elseif c == 34 then string_()
    elseif c == 116 or c == 102 or c == 110 then literal()
    elseif c == 45 or digit(c) then number()
    else stop_or_eof("expected a value") end
  end
  local ok, err = pcall(function()
    ws()
    if s:byte(i) ~= 123 then stop_or_eof("top level is not an object") end
    object(0)
    ws()
    if i <= n then stop(i, "trailing characters after the object") end
  end)
  if ok then return nil end
  if type(err) ~= "table" then error(err, 0) end
  return err.at, err.rule, err.reason
end

local function json_check(text)
  local good = utf8_valid_up_to(text)
  if good < #text then
    local at, rule, reason = json_syntax(text:sub(1, good))
    if at and at < good then return at, rule, reason end
    return good, "json_syntax", "not UTF-8"
  end
  return json_syntax(text)
end

-- ------------------------------------------------------------------------------------------------
-- The steps of G.BODIES.

local OPS = {}

local function run(ctx, steps)
  for _, st in ipairs(steps) do
    if ctx.stop then return true end
    if not OPS[st.op](ctx, st) then return false end
  end
  return true
end

function OPS.struct(ctx, st)
  local s = S[st.s]
  local have = ctx.limit - ctx.pos
  if have < s.size then
    return fail(ctx, "short_body", string.format("%s needs %d bytes, payload has %d", s.name, s.size, have), ctx.pos)
  end
  add_struct(ctx, ctx.tree, s, ctx.pos)
  ctx.pos = ctx.pos + s.size
  return true
end

function OPS.array(ctx, st)
  local s = S[st.s]
  local v = ctx.vals[st.count]
  local n = tonum(v)
  local have = ctx.limit - ctx.pos
  if n * s.size > have then
    return fail(ctx, "count_exceeds_payload",
      string.format("%s = %s but only %d bytes follow", FD[st.count].name, dec(v), have), ctx.pos)
  end
  for k = 0, n - 1 do
    add_struct(ctx, ctx.tree, s, ctx.pos, k)
    ctx.pos = ctx.pos + s.size
  end
  return true
end

function OPS.data(ctx, st)
  local v = ctx.vals[st.len]
  local n = tonum(v)
  local have = ctx.limit - ctx.pos
  if n > have then
    return fail(ctx, "count_exceeds_payload",
      string.format("%s = %s but only %d bytes follow", FD[st.len].name, dec(v), have), ctx.pos)
  end
  add_data(ctx, st.kind, ctx.pos, n)
  ctx.pos = ctx.pos + n
  return true
end

function OPS.rest(ctx, st)
  add_data(ctx, st.kind, ctx.pos, ctx.limit - ctx.pos)
  ctx.pos = ctx.limit
  return true
end

function OPS.stop_if_empty(ctx, _)
  if ctx.pos >= ctx.limit then ctx.stop = true end
  return true
end

function OPS.if_flag(ctx, st)
  if masked(ctx.vals[st.field], st.mlo, st.mhi) ~= 0 then return run(ctx, st.steps) end
  return true
end

function OPS.if_nonempty(ctx, st)
  if ctx.pos < ctx.limit then return run(ctx, st.steps) end
  return true
end

function OPS.switch(ctx, st)
  local key = masked(ctx.vals[st.field], st.mlo, st.mhi) / 2 ^ st.shift
  for _, case in ipairs(st.cases) do
    for _, v in ipairs(case.values) do
      if v == key then return run(ctx, case.steps) end
    end
  end
  return run(ctx, st.default)
end

function OPS.json(ctx, _)
  local tvb, pos, limit = ctx.tvb, ctx.pos, ctx.limit
  if pos >= limit then return true end
  if tvb(limit - 1, 1):uint() ~= 0 then
    return fail(ctx, "json_not_terminated", "capabilities JSON must end with a NUL as the last payload byte", limit - 1)
  end
  local text = ""
  if limit - 1 > pos then text = tvb(pos, limit - 1 - pos):raw() end
  local nul = text:find("\0", 1, true)
  if nul then
    return fail(ctx, "json_not_terminated", "capabilities JSON must end with a NUL as the last payload byte", pos + nul - 1)
  end
  local at, rule, reason = json_check(text)
  if at then
    local what = rule == "json_too_large" and "capabilities JSON exceeds the parser's capacity (" .. reason .. ")"
      or "capabilities JSON: " .. reason
    return fail(ctx, rule, what, pos + at)
  end
  add_data(ctx, "json", pos, limit - 1 - pos)
  add_data(ctx, "nul", limit - 1, 1)
  ctx.pos = limit
  return true
end

-- The capability chain of a region-info reply (vfio-user spec §2.5), checked as the codec checks it;
-- capability offsets count from the payload start.
function OPS.region_caps(ctx, st)
  local tvb = ctx.tvb
  local base = G.HEADER_SIZE
  local fixed = S[st.info].size
  local start = ctx.pos
  local area = ctx.limit - start
  local first = 0
  if masked(ctx.vals[st.flags], st.mlo, st.mhi) ~= 0 then first = tonum(ctx.vals[st.first]) end
  if first == 0 then return OPS.rest(ctx, { kind = "cap_area" }) end
  local hdr = S[st.header]
  local caps, at, seen = {}, first, 0
  -- A pointer that leads nowhere is reported at the pointer itself: the cap_offset field, then each
  -- capability's next field (as the codec's CapIter does).
  local from = FD[st.first].off
  while true do
    local rest = area - (at - fixed)
    if at < fixed then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_overlaps_fixed",
        string.format("region capability at payload offset %d overlaps the %d-byte fixed part", at, fixed), base + from)
    end
    if rest < hdr.size then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_out_of_bounds",
        string.format("region capability at payload offset %d is outside the %d-byte payload", at, fixed + area), base + from)
    end
    local id = tonum((read_field(tvb, base + at, FD[st.id])))
    local nxt = tonum((read_field(tvb, base + at, FD[st.next])))
    if nxt ~= 0 and nxt <= at then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_loop",
        string.format("region capability at payload offset %d has next = %d, which does not move forward", at, nxt), base + at + FD[st.next].off)
    end
    seen = seen + 1
    if seen > st.max then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_loop", string.format("more than %d region capabilities", st.max), base + at)
    end
    local kind = st.kinds[id]
    local cap = { at = at, s = S[st.unknown], n = 0 }
    if kind then
      local head = S[kind.head]
      local need = head.size
      if rest < need then
        OPS.rest(ctx, { kind = "cap_area" })
        return fail(ctx, "cap_truncated",
          string.format("region capability %d needs %d bytes, %d are left", id, need, rest), base + at)
      end
      cap.s = head
      if kind.count then
        local nv = read_field(tvb, base + at, FD[kind.count])
        local n = tonum(nv)
        local area_s = S[kind.area]
        need = head.size + n * area_s.size
        if rest < need then
          OPS.rest(ctx, { kind = "cap_area" })
          return fail(ctx, "cap_truncated",
            string.format("region capability %d needs %d bytes, %d are left", id, need, rest), base + at)
        end
        cap.n, cap.area = n, area_s
      end
    end
    caps[#caps + 1] = cap
    if nxt == 0 then break end
    from = at + FD[st.next].off
    at = nxt
  end
  -- In chain order (which is offset order), with the gaps as capability-area bytes.
  local pos = fixed
  for _, c in ipairs(caps) do
    if c.at > pos then add_data(ctx, "cap_area", base + pos, c.at - pos) end
    local o = base + c.at
    add_struct(ctx, ctx.tree, c.s, o)
    o = o + c.s.size
    for k = 0, c.n - 1 do
      add_struct(ctx, ctx.tree, c.area, o, k)
      o = o + c.area.size
    end
    if o - base > pos then pos = o - base end
  end
  if pos - fixed < area then add_data(ctx, "cap_area", base + pos, area - (pos - fixed)) end
  ctx.pos = ctx.limit
  return true
end

-- IO_FDS reply entries: the stride from argsz and count, else from the bytes present (§2.6).
function OPS.io_fds(ctx, st)
  local rest = ctx.limit - ctx.pos
  if rest == 0 then return true end
  local n = tonum(ctx.vals[st.count])
  if n == 0 then return true end
  local argsz = tonum(ctx.vals[st.argsz])
  local head = S[st.head].size
  local entry
  if argsz >= head and (argsz - head) % n == 0 then
    local stride = (argsz - head) / n
    for _, e in ipairs(st.entries) do
      if e.size == stride then entry = e end
    end
  end
  if not entry then
    local q = math.floor(rest / n)
    for _, e in ipairs(st.entries) do
      if e.size == q then entry = e end
    end
  end
  if not entry then
    return fail(ctx, "io_fd_stride",
      string.format("no IO_FDS entry size fits argsz %d, count %d and %d bytes", argsz, n, rest), ctx.pos)
  end
  local s = S[entry.s]
  if rest < n * s.size then
    return fail(ctx, "short_body", string.format("%s entries need %d bytes, payload has %d", s.name, n * s.size, rest), ctx.pos)
  end
  for k = 0, n - 1 do
    add_struct(ctx, ctx.tree, s, ctx.pos, k)
    ctx.pos = ctx.pos + s.size
  end
  return true
end

-- DMA_LOGGING_REPORT reply: ceil(ceil(length / page_size) / 64) * 8 bytes of bitmap when present,
-- else everything left.
function OPS.report_bitmap(ctx, st)
  local rest = ctx.limit - ctx.pos
  local len, page = ctx.vals[st.length], ctx.vals[st.page]
  local want
  if tonum(page) ~= 0 then
    local zero = UInt64(0)
    local pages = len / page
    if len % page ~= zero then pages = pages + 1 end
    local words = pages / 64
    if pages % 64 ~= zero then words = words + 1 end
    if words <= UInt64.max() / 8 then want = words * 8 end
  end
  local n = rest
  if want and want <= UInt64(rest) then n = tonum(want) end
  add_data(ctx, "bitmap", ctx.pos, n)
  ctx.pos = ctx.pos + n
  return true
end

-- ------------------------------------------------------------------------------------------------
-- Record metadata and request/response tracking.

local function record_meta(tvb, pinfo, root, proto_name)
  local X = G.X[proto_name]
  local m = { dir = pinfo.p2p_dir, conn = 0, fds = 0, truncated = false }
  if f_iface then
    local fi = f_iface()
    if fi then m.conn = fi.value end
  end
  if f_comment then
    for _, c in ipairs({ f_comment() }) do
      for w in tostring(c.value):gmatch("%S+") do
        local num = w:sub(1, #G.COMMENT_FDS) == G.COMMENT_FDS and tonumber(w:sub(#G.COMMENT_FDS + 1))
        if num then m.fds = m.fds + num end
        if w == G.COMMENT_TRUNCATED then m.truncated = true end
      end
    end
  end
  if f_time then
    local t = f_time()
    if t then m.ts = t.value end
  end
  -- Field values exist only when Wireshark builds a tree for the frame (not in the first pass of
  -- `tshark -2` without a filter): pairing needs the connection, so it waits for such a pass.
  m.fields_ok = m.ts ~= nil
  m.dname = G.DIR[m.dir]
  root:add(X.dir, m.dname or "?"):set_generated()
  root:add(X.conn, m.conn):set_generated()
  root:add(X.fds, m.fds):set_generated()
  root:add(X.truncated, m.truncated):set_generated()
  if m.truncated then root:add_proto_expert_info(E[proto_name].truncated) end
  if not m.dname then root:add_proto_expert_info(E[proto_name].no_direction) end
  return m
end

-- Reply time minus request time, never negative (as vfu-dump computes it).
local function rtt(reply, request)
  local d = reply - request
  if d.secs < 0 then return NSTime(0, 0) end
  return d
end

local T = {}
local function reset()
  T.vfio_user = { pending = {}, frames = {}, last = 0 }
  T.vduse = { pending = {}, frames = {}, last = 0 }
end
reset()
function P_VFIO.init() reset() end
function P_VDUSE.init() reset() end
function P_IOCTL.init() reset() end

-- The pairing record of this frame when pairing is to be done now: once per frame, in frame order
-- (a frame visited out of order, say clicked in the GUI before the first pass saw it, is not paired).
local function pairing_slot(state, pinfo, m)
  local fi = state.frames[pinfo.number]
  if (fi and fi.done) or not m.fields_ok or pinfo.number <= state.last then return nil end
  state.last = pinfo.number
  fi = fi or {}
  fi.done = true
  state.frames[pinfo.number] = fi
  return fi
end

local function show_links(root, proto_name, info)
  local X = G.X[proto_name]
  if info.request then
    root:add(X.response_to, info.request):set_generated()
    if info.rtt then root:add(X.time, info.rtt):set_generated() end
  end
  if info.response then root:add(X.response_in, info.response):set_generated() end
end

-- ------------------------------------------------------------------------------------------------
-- vfio-user.

function P_VFIO.dissector(tvb, pinfo, tree)
  pinfo.cols.protocol = G.COLUMN.vfio_user
  local len = tvb:len()
  local root = tree:add(P_VFIO, tvb())
  local ctx = new_ctx(tvb, pinfo, root, "vfio_user")
  local m = record_meta(tvb, pinfo, root, "vfio_user")
  local H = G.HDR
  local hdr = S[H.struct]
  local info
  if len < hdr.size then
    fail(ctx, "short_header", string.format("only %d bytes, a header needs %d", len, hdr.size), 0)
    info = "malformed: " .. ctx.error
  else
    add_struct(ctx, root, hdr, 0)
    local v = ctx.vals
    local id, cmd, size, flags = tonum(v[H.id]), tonum(v[H.cmd]), tonum(v[H.size]), tonum(v[H.flags])
    local errno = tonum(v[H.errno])
    local typ = band(flags, G.F.TYPE_MASK)
    local reply = typ == G.F.TYPE_REPLY
    local is_error = band(flags, G.F.ERROR) ~= 0
    if size < hdr.size then
      fail(ctx, "msg_size_below_header", string.format("msg_size %d is smaller than the %d-byte header", size, hdr.size), 4)
    elseif len < size then
      fail(ctx, "msg_truncated", string.format("msg_size says %d bytes but only %d are present", size, len), len)
    elseif len > size then
      fail(ctx, "msg_overlong", string.format("msg_size says %d bytes but %d were given", size, len), size)
    elseif typ ~= G.F.TYPE_COMMAND and typ ~= G.F.TYPE_REPLY then
      fail(ctx, "bad_message_type", string.format("message type %d is neither command (0) nor reply (1)", typ), 8)
    else
      ctx.pos, ctx.limit, ctx.reply = hdr.size, size, reply
      if reply and is_error then
        root:add_proto_expert_info(ctx.E.error_reply,
          "Error reply: " .. (G.VS_ERRNO[errno] or "errno") .. " (" .. int(errno) .. ")")
      else
        local body = G.BODIES[cmd]
        local steps = G.UNKNOWN_BODY
        if body then
          steps = reply and body.reply or body.request
        else
          root:add_proto_expert_info(ctx.E.unknown_command, "Unknown command " .. int(cmd))
        end
        run(ctx, steps)
      end
      if not ctx.failed then add_data(ctx, "trailing", ctx.pos, ctx.limit - ctx.pos) end
      flush(ctx)
    end
    local name = G.CMD_SHORT[cmd] or ("UNKNOWN(" .. int(cmd) .. ")")
    if ctx.failed then
      info = string.format("id=%d %s %dB malformed: %s", id, name, size, ctx.error)
    else
      local kind
      if reply then
        if is_error then kind = (G.VS_ERRNO[errno] or "?") .. "(" .. int(errno) .. ")" else kind = "ok" end
      elseif band(flags, G.F.NO_REPLY) ~= 0 then
        kind = "cmd,no-reply"
      else
        kind = "cmd"
      end
      info = string.format("id=%d %s %s %dB", id, name, kind, size)
      if #ctx.sum > 0 then info = info .. " " .. table.concat(ctx.sum, " ") end
    end
    -- Pairing, as vfu-dump does it: (connection, direction, msg_id) of every message whose header
    -- says command or reply, a malformed one included.
    local state = T.vfio_user
    local slot = pairing_slot(state, pinfo, m)
    if slot and (typ == G.F.TYPE_COMMAND or reply) and m.dname then
      local fi = slot
      if reply then
        local key = m.conn .. ":" .. (m.dir == G.P2P.c2s and G.P2P.s2c or G.P2P.c2s) .. ":" .. id
        local req = state.pending[key]
        if req then
          state.pending[key] = nil
          fi.request = req.frame
          fi.rtt = rtt(m.ts, req.ts)
          local ri = state.frames[req.frame]
          if ri then ri.response = pinfo.number end
        end
      elseif band(flags, G.F.NO_REPLY) == 0 then
        state.pending[m.conn .. ":" .. m.dir .. ":" .. id] = { frame = pinfo.number, ts = m.ts }
      end
    end
    local fi = state.frames[pinfo.number]
    if fi then show_links(root, "vfio_user", fi) end
  end
  if m.fds > 0 then info = info .. " fds=" .. int(m.fds) end
  if m.truncated then info = info .. " [truncated]" end
  pinfo.cols.info:set(info)
  return len
end

-- ------------------------------------------------------------------------------------------------
-- VDUSE: one 152-byte request (kernel to daemon) or response (daemon to kernel); the union member
-- follows the request type, and a response's follows the type of the request it answers.

function P_VDUSE.dissector(tvb, pinfo, tree)
  pinfo.cols.protocol = G.COLUMN.vduse
  local len = tvb:len()
  local root = tree:add(P_VDUSE, tvb())
  local ctx = new_ctx(tvb, pinfo, root, "vduse")
  local m = record_meta(tvb, pinfo, root, "vduse")
  local V = G.VDUSE
  local state = T.vduse
  local info
  if len ~= V.size then
    fail(ctx, "vduse_size", string.format("a VDUSE message is %d bytes, this one %d", V.size, len), 0)
    info = "malformed: " .. ctx.error
  elseif m.dir == G.P2P.c2s then
    add_struct(ctx, root, S[V.request], 0)
    local t = tonum(ctx.vals[V.req_type])
    local id = tonum(ctx.vals[V.request_id])
    local tname = FD[V.req_type].vs and FD[V.req_type].vs[t]
    local member = V.request_members[t]
    if member then
      add_struct(ctx, root, S[member], V.union)
    else
      root:add_proto_expert_info(ctx.E.unknown_command, "Unknown request type " .. int(t))
    end
    if tname then
      info = string.format("VDUSE_%s (%d) id %d", tname, t, id)
    else
      info = string.format("VDUSE request type %d id %d", t, id)
    end
    if member then
      local parts = {}
      for _, fd in ipairs(S[member].fields) do
        if fd.show ~= "reserved" then
          local v, r = read_field(tvb, V.union, fd)
          parts[#parts + 1] = fd.name .. "=" .. value_text(fd, v, r)
        end
      end
      if #parts > 0 then info = info .. " " .. table.concat(parts, " ") end
    end
    if pairing_slot(state, pinfo, m) then
      state.pending[m.conn .. ":" .. id] = { frame = pinfo.number, ts = m.ts, type = t }
    end
  elseif m.dir == G.P2P.s2c then
    add_struct(ctx, root, S[V.response], 0)
    local id = tonum(ctx.vals[V.response_id])
    local result = tonum(ctx.vals[V.result])
    local fi = pairing_slot(state, pinfo, m)
    if fi then
      local key = m.conn .. ":" .. id
      local req = state.pending[key]
      if req then
        state.pending[key] = nil
        fi.request, fi.type = req.frame, req.type
        fi.rtt = rtt(m.ts, req.ts)
        local ri = state.frames[req.frame]
        if ri then ri.response = pinfo.number end
      end
    end
    local fi = state.frames[pinfo.number]
    local member = fi and fi.type and V.response_members[fi.type]
    if member then add_struct(ctx, root, S[member], V.union) end
    local rname = FD[V.result].vs and FD[V.result].vs[result]
    info = string.format("response id %d %s", id, result == V.result_ok and (rname or "OK") or
      string.format("%s (%d)", rname or "result", result))
  else
    info = "VDUSE message, direction unknown"
  end
  local fi = state.frames[pinfo.number]
  if fi then show_links(root, "vduse", fi) end
  if m.truncated then info = info .. " [truncated]" end
  pinfo.cols.info:set(info)
  return len
end

-- ------------------------------------------------------------------------------------------------
-- VDUSE ioctl records: a head (request, result, argument length, which copies follow), then the
-- argument as it went in and as the kernel left it, each shown with the VDUSE struct the request
-- number names.

function P_IOCTL.dissector(tvb, pinfo, tree)
  pinfo.cols.protocol = G.COLUMN.vduse_ioctl
  local len = tvb:len()
  local root = tree:add(P_IOCTL, tvb())
  local ctx = new_ctx(tvb, pinfo, root, "vduse_ioctl")
  local m = record_meta(tvb, pinfo, root, "vduse_ioctl")
  local I = G.IOCTL
  local head = S[I.head]
  local info
  if len < head.size then
    fail(ctx, "ioctl_record", string.format("an ioctl record has a %d-byte head, this one %d bytes", head.size, len), 0)
    info = "malformed: " .. ctx.error
  else
    add_struct(ctx, root, head, 0, nil, true)
    local req = tonum(read_field(tvb, 0, FD[I.request]))
    local result = tonum(read_field(tvb, 0, FD[I.result]))
    local alen = tonum(read_field(tvb, 0, FD[I.arg_len]))
    local flags = tonum(read_field(tvb, 0, FD[I.flags]))
    local d = G.IOCTLS[req]
    info = (d and d.name or string.format("ioctl 0x%08x", req)) .. " = " .. int(result)
    if result < 0 then
      local n = G.VS_ERRNO and G.VS_ERRNO[-result]
      if n then info = info .. " " .. n end
    end
    local copies = (band(flags, 1) ~= 0 and 1 or 0) + (band(flags, 2) ~= 0 and 1 or 0)
    if head.size + alen * copies ~= len then
      fail(ctx, "ioctl_record", string.format("arg_len %d with %d copies does not fill the %d-byte record", alen, copies, len), 8)
      info = info .. " [malformed]"
    else
      local off = head.size
      for _, c in ipairs({ { 1, "arg_in" }, { 2, "arg_out" } }) do
        if band(flags, c[1]) ~= 0 then
          local item = root:add(G.X.vduse_ioctl[c[2]], tvb(off, alen))
          local s = d and d.s and S[d.s]
          if s and alen >= s.size then add_struct(ctx, item, s, off, nil, true) end
          off = off + alen
        end
      end
    end
  end
  if m.fds > 0 then info = info .. " fds=" .. int(m.fds) end
  if m.truncated then info = info .. " [truncated]" end
  pinfo.cols.info:set(info)
  return len
end
