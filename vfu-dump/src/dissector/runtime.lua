
-- ------------------------------------------------------------------------------------------------
-- The interpreter: the same in every generated file. Everything above this line is data generated
-- from the codec's tables; nothing below names a field, a layout or a command.
-- ------------------------------------------------------------------------------------------------

-- Wireshark 4.0 embeds Lua 5.2, which has bit32 and no bit operators. Lua 5.3 and later have the
-- operators and may lack bit32: the fallback is compiled only there, so 5.2 never parses it.
local bit = bit32 or load("return { band = function(a, b) return a & b end, "
  .. "bor = function(a, b) return a | b end, bnot = function(a) return ~a & 0xFFFFFFFF end }")()
local band, bor, bnot = bit.band, bit.bor, bit.bnot
local byte, sfmt, concat = string.byte, string.format, table.concat
local TWO32 = 4294967296
local TWO21 = 2097152

-- An integral number as text without a fraction, whichever Lua.
local function int(n)
  return sfmt("%d", n)
end

-- Field descriptors by key ("dma_map.flags"), and the struct key of each; the views of a field
-- (G.VIEWS) as structs.
local FD = {}
for skey, s in pairs(S) do
  s.key = skey
  for _, fd in ipairs(s.fields) do
    FD[fd.key] = fd
  end
end
for key, views in pairs(G.VIEWS) do
  local v = {}
  for _, vk in ipairs(views) do v[#v + 1] = S[vk] end
  FD[key].views = v
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
    cut = ProtoExpert.new(name .. ".cut_by_capture",
      "Message cut by the capture: the record holds fewer bytes than the message had", expert.group.UNDECODED,
      expert.severity.NOTE),
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
-- Values: numbers, read from the message's bytes (a Lua string); a 64-bit value that a Lua 5.2
-- number cannot hold exactly is a UInt64; nil for byte arrays.
--
-- Every call into C (a string function, any Wireshark object) costs about as much as a few dozen
-- Lua operations, and what is allocated per message costs again in the collector, so a message's
-- first bytes are read once, as one string, and each struct's needed fields are read by a
-- function compiled from its layout that unpacks the struct's bytes with one string.byte.

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

local function u64(v)
  if type(v) == "number" then return UInt64(v % TWO32, math.floor(v / TWO32)) end
  return v
end

local function dec(v)
  if type(v) == "number" then return sfmt("%d", v) end
  return tostring(v)
end

local function hex(v)
  if type(v) == "number" then return sfmt("0x%x", v) end
  local h = v:tohex():gsub("^0+", "")
  if h == "" then h = "0" end
  return "0x" .. h
end

-- The value of field fd whose first byte is b:byte(i).
local function decode(b, i, fd)
  local k, le = fd.kind, fd.le
  if k == "u32" or k == "i32" then
    local x1, x2, x3, x4 = byte(b, i, i + 3)
    local v
    if le then v = x1 + x2 * 256 + x3 * 65536 + x4 * 16777216
    else v = x4 + x3 * 256 + x2 * 65536 + x1 * 16777216 end
    if k == "i32" and v >= 2147483648 then v = v - TWO32 end
    return v
  elseif k == "u16" then
    local x1, x2 = byte(b, i, i + 1)
    if le then return x1 + x2 * 256 end
    return x2 + x1 * 256
  elseif k == "u64" then
    local x1, x2, x3, x4, x5, x6, x7, x8 = byte(b, i, i + 7)
    local lo, hi
    if le then
      lo, hi = x1 + x2 * 256 + x3 * 65536 + x4 * 16777216, x5 + x6 * 256 + x7 * 65536 + x8 * 16777216
    else
      hi, lo = x4 + x3 * 256 + x2 * 65536 + x1 * 16777216, x8 + x7 * 256 + x6 * 65536 + x5 * 16777216
    end
    if hi < TWO21 then return hi * TWO32 + lo end
    return UInt64(lo, hi)
  elseif k == "u8" then
    return byte(b, i)
  end
  return nil
end

local function all_zero(b, i, n)
  return not b:sub(i, i + n - 1):find("[^\0]")
end

-- The fields whose values the walk reads (counts, lengths, flags, the header, VDUSE's type, id and
-- result): every field key named in the step tables, G.HDR and G.VDUSE.
local function mark_needed(t, seen)
  if seen[t] then return end
  seen[t] = true
  for _, v in pairs(t) do
    if type(v) == "string" and FD[v] then
      FD[v].need = true
    elseif type(v) == "table" then
      mark_needed(v, seen)
    end
  end
end
mark_needed({ G.BODIES, G.UNKNOWN_BODY, G.HDR, G.VDUSE }, {})

-- Per struct, s.read(b, i, vals), compiled from the layout: stores the needed fields of the
-- struct whose first byte is b:byte(i) in vals (the values decode() gives) and returns whether a
-- reserved field is not zero; s.viewed, its fields with views. Bytes are unpacked into locals (a
-- Lua function has at most 200), so a struct whose needed and reserved fields reach past that
-- reads them with decode().
local function word_src(o, le)
  if le then return sfmt("(x%d + x%d * 256 + x%d * 65536 + x%d * 16777216)", o, o + 1, o + 2, o + 3) end
  return sfmt("(x%d + x%d * 256 + x%d * 65536 + x%d * 16777216)", o + 3, o + 2, o + 1, o)
end

local function read_src(fd)
  local o, le, key = fd.off, fd.le, sfmt("vals[%q]", fd.key)
  local k = fd.kind
  if k == "u8" then return sfmt("%s = x%d\n", key, o) end
  if k == "u16" then
    if le then return sfmt("%s = x%d + x%d * 256\n", key, o, o + 1) end
    return sfmt("%s = x%d + x%d * 256\n", key, o + 1, o)
  end
  if k == "u32" then return sfmt("%s = %s\n", key, word_src(o, le)) end
  if k == "i32" then
    return sfmt("do local v = %s; if v >= 2147483648 then v = v - 4294967296 end; %s = v end\n", word_src(o, le), key)
  end
  if k == "u64" then
    local lo, hi = word_src(o, true), word_src(o + 4, true)
    if not le then lo, hi = word_src(o + 4, false), word_src(o, false) end
    return sfmt("do local lo, hi = %s, %s; if hi < 2097152 then %s = hi * 4294967296 + lo else %s = UInt64(lo, hi) end end\n",
      lo, hi, key, key)
  end
  return ""
end

local MAX_UNPACK = 160

for _, s in pairs(S) do
  s.viewed = {}
  local span, reads, zeros = 0, {}, {}
  for _, fd in ipairs(s.fields) do
    if fd.views then s.viewed[#s.viewed + 1] = fd end
    if fd.need and fd.kind ~= "bytes" then
      reads[#reads + 1] = read_src(fd)
      span = math.max(span, fd.off + fd.size)
    end
    if fd.show == "reserved" then
      for k = fd.off, fd.off + fd.size - 1 do zeros[#zeros + 1] = sfmt("x%d ~= 0", k) end
      span = math.max(span, fd.off + fd.size)
    end
  end
  if span <= MAX_UNPACK then
    local src = { "local byte, UInt64 = ...\nreturn function(b, i, vals)\n" }
    if span > 0 then
      local names = {}
      for k = 0, span - 1 do names[#names + 1] = "x" .. k end
      src[#src + 1] = sfmt("local %s = byte(b, i, i + %d)\n", concat(names, ", "), span - 1)
    end
    for _, r in ipairs(reads) do src[#src + 1] = r end
    src[#src + 1] = #zeros > 0 and ("return " .. concat(zeros, " or ") .. "\n") or "return false\n"
    src[#src + 1] = "end\n"
    s.read = assert(load(concat(src), "=" .. s.name, "t", {}))(byte, UInt64)
  else
    s.read = function(b, i, vals)
      local bad = false
      for _, fd in ipairs(s.fields) do
        if fd.need then vals[fd.key] = decode(b, i + fd.off, fd) end
        if fd.show == "reserved" and not all_zero(b, i + fd.off, fd.size) then bad = true end
      end
      return bad
    end
  end
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
        out[#out + 1] = p.name .. "=" .. sfmt("%d", x)
      end
    end
  end
  local rlo, rhi = band(lo, bnot(clo)), band(hi, bnot(chi))
  if rhi ~= 0 then
    out[#out + 1] = sfmt("0x%x%08x", rhi, rlo)
  elseif rlo ~= 0 then
    out[#out + 1] = sfmt("0x%x", rlo)
  end
  if #out == 0 then return "0" end
  return concat(out, "|")
end

local function named(vs, v)
  if vs and v ~= nil then return vs[tonum(v)] end
  return nil
end

-- A field's value as vfu-dump's one-line summary shows it: 0x1000, READ|WRITE, EINVAL (22), BAR0 (0).
-- `at` is the field's offset in the message (for byte arrays and text).
local function value_text(ctx, fd, v, at)
  if v == nil then
    local r = ctx.tvb(at, fd.size)
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

-- Attribute getters and methods of Wireshark's objects, taken once from the first message's: a
-- plain `pinfo.number` or `tvb:len()` first goes through the object's __index (a C function that
-- looks the name up), which costs as much as the call. wslua keeps each class's getters in a
-- __getters table of its metatable; where it does not, the plain access is used.
local A = nil

local function getter(obj, name)
  local mt = getmetatable(obj)
  local g = type(mt) == "table" and type(mt.__getters) == "table" and rawget(mt.__getters, name)
  if type(g) == "function" then return g end
  return function(o) return o[name] end
end

local function accessors(tvb, pinfo, tree)
  return {
    len = tvb.len, reported_len = tvb.reported_len, raw = tvb.raw,
    number = getter(pinfo, "number"), p2p_dir = getter(pinfo, "p2p_dir"),
    visible = getter(tree, "visible"), item_len = getter(tree, "len"),
    value = nil, -- a FieldInfo's, taken from the first one
  }
end

-- The value of a FieldInfo.
local function fi_value(fi)
  local get = A.value
  if not get then
    get = getter(fi, "value")
    A.value = get
  end
  return get(fi)
end

-- ------------------------------------------------------------------------------------------------
-- Items Wireshark keeps.
--
-- When Wireshark shows the tree (`tree.visible`: Wireshark's details pane, tshark -V, -T fields,
-- -T json), every item is added. When it does not (the packet list, tshark -q, a display filter
-- without -V), Wireshark drops every item added under another one, unless the item's field is
-- referenced (by a display filter, a tap's filter, a custom column, a field extractor): it returns
-- the parent instead ("fakes" the item). The Lua API cannot ask whether a field is referenced, and
-- each add costs thousands of instructions in wslua whether it is kept or not, so the first time a
-- field comes up in a pass, its item is added and its length tells which happened: the length of
-- its range means kept, the parent's length means dropped (equal lengths tell nothing: the field
-- is asked again next time). A dropped field is not added again in that pass; a pass ends when a
-- frame comes whose number is not above the last one's (tshark -2, a new display filter or a
-- rescan in Wireshark), and what Wireshark references may change only between passes.
--
-- The protocol's own item (the root of a message's items) is added under the frame's top level,
-- where Wireshark keeps everything: whether the protocol is referenced is learned the same way
-- from a zero-length protocol item under the root. With a hidden tree, the root is added only
-- when the protocol is referenced or something is to go under it (kept items, expert info).
--
-- Values, the Info column, pairing and expert info do not depend on any of this.

local KEEP = {}
-- The pass KEEP belongs to (bumped when it is emptied), the last frame number seen, and whether
-- frames of this pass have column data (nil: not known yet).
local GEN = 0
local last_frame = -1
local COLS = nil

local function new_pass()
  KEEP = {}
  GEN = GEN + 1
  COLS = nil
end

-- The message's root item, added when first needed.
local function root(ctx)
  local r = ctx.tree
  if not r then
    r = ctx.top:add(ctx.proto, ctx.tvb())
    ctx.tree = r
  end
  return r
end

-- Adds field pf to parent (nil: the root) over the message bytes [off, off + n): `how` is "le"
-- (little-endian), "z" (a NUL-terminated string), "utf8" (a UTF-8 string), "v" (no bytes: `value`)
-- or nil (big-endian or no byte order).
local function add_item(ctx, parent, pf, off, n, how, value)
  parent = parent or root(ctx)
  if how == "v" then return parent:add(pf, value) end
  local r = ctx.tvb(off, n)
  if how == "le" then return parent:add_le(pf, r) end
  if how == "z" then return parent:add(pf, r, r:stringz()) end
  if how == "utf8" then return (parent:add_packet_field(pf, r, ENC_UTF_8)) end
  return parent:add(pf, r)
end

-- With the tree hidden: adds the item unless Wireshark is known to drop it. Returns the item and
-- its length, or nil when not added or dropped (the children then go to `parent`, as Wireshark
-- would put them). `plen` is the length of `parent`'s item.
local function keep(ctx, parent, plen, pf, off, n, how, value)
  local k = KEEP[pf]
  if k == false then return nil end
  local it = add_item(ctx, parent, pf, off, n, how, value)
  local want = how == "v" and 0 or n
  if k then return it, want end
  if plen == want then return it, want end
  local l = A.item_len(it)
  if l == want then
    KEEP[pf] = true
  elseif l == plen then
    KEEP[pf] = false
    return nil
  end
  return it, l
end

-- Adds an item whichever way the tree is: everything when shown, what is kept when hidden.
local function item(ctx, parent, plen, pf, off, n, how, value)
  if ctx.full then return add_item(ctx, parent, pf, off, n, how, value), (how == "v" and 0 or n) end
  return keep(ctx, parent, plen, pf, off, n, how, value)
end

-- Whether every item of struct s (itself, its fields, their bit fields and views) is known to be
-- dropped in this pass: then a hidden tree needs only the values the walk uses.
local function dead(s)
  if s.dead == GEN then return true end
  if KEEP[s.pf] ~= false then return false end
  local fields = s.fields
  for k = 1, #fields do
    local fd = fields[k]
    if KEEP[fd.pf] ~= false then return false end
    if fd.parts then
      for j = 1, #fd.parts do
        local p = fd.parts[j]
        if p.pf and KEEP[p.pf] ~= false then return false end
      end
    end
    if fd.views then
      for j = 1, #fd.views do
        if not dead(fd.views[j]) then return false end
      end
    end
  end
  s.dead = GEN
  return true
end

-- Per protocol, the pass in which the record's own fields (direction, connection, descriptors,
-- truncated) were all found dropped.
local META_DEAD = {}

-- ------------------------------------------------------------------------------------------------
-- Walking a message: ctx holds the tvb, the root item (once added) and its length, the values read
-- so far (by field key), the position and the end of the message, the bytes captured (fewer than
-- the message when the capture cut it), and, when there are columns, the one-line summary being
-- built.

-- Message bytes read at once at the start (the fixed parts of most messages fit).
local WINDOW = 48
local CTX = { vals = {} }

local function new_ctx(tvb, pinfo, tree, proto_name)
  if not A then A = accessors(tvb, pinfo, tree) end
  local cap = A.len(tvb)
  local rep = A.reported_len(tvb)
  local full = A.visible(tree)
  -- One table for every message (a table with this many fields costs more to make than to reset).
  -- The values are not cleared: the walk reads only fields of structs it has read in this message.
  local ctx = CTX
  local n = A.number(pinfo)
  if n <= last_frame then new_pass() end
  last_frame = n
  ctx.n = n
  -- Whether there is column data (not with tshark -q) does not change within a pass; without it, a
  -- column object's text is its name in parentheses ("(number)"; "(nil)" for a column not shown).
  if COLS == nil or full then COLS = tostring(pinfo.cols.number) ~= "(number)" end
  local P = G.proto[proto_name]
  local w = ""
  if cap > 0 then w = A.raw(tvb, 0, cap < WINDOW and cap or WINDOW) end
  ctx.tvb, ctx.top, ctx.proto, ctx.tree, ctx.rlen, ctx.E, ctx.full = tvb, tree, P, nil, cap, E[proto_name], full
  ctx.cols, ctx.cap, ctx.rep, ctx.w, ctx.wlen = COLS, cap, rep, w, #w
  ctx.pos, ctx.limit, ctx.arr, ctx.reply = 0, cap, nil, false
  ctx.failed, ctx.error, ctx.stop, ctx.cut = false, nil, false, false
  if COLS then ctx.sum = {} end
  local k = KEEP[P]
  if full or k then
    root(ctx)
  elseif k == nil and cap > 0 then
    local l = A.item_len(root(ctx):add(P, tvb(0, 0)))
    if l == 0 then KEEP[P] = true elseif l == cap then KEEP[P] = false end
  end
  return ctx
end

-- The bytes of the message from offset off, n of them (all captured): a string and the index of
-- the first.
local function bytes_at(ctx, off, n)
  if off + n <= ctx.wlen then return ctx.w, off + 1 end
  if n <= 0 then return "", 1 end
  return ctx.tvb:raw(off, n), 1
end

local function flush(ctx)
  if ctx.arr then
    ctx.sum[#ctx.sum + 1] = ctx.arr.name .. "[" .. int(ctx.arr.n) .. "]"
    ctx.arr = nil
  end
end

local function fail(ctx, rule, text, at)
  local r = G.RULE[rule]
  local msg = sfmt("%s at offset 0x%x [%s %s]", text, at, r.id, r.spec)
  ctx.failed = true
  if not ctx.error then ctx.error = msg end
  if at < ctx.cap then
    root(ctx):add_tvb_expert_info(ctx.E.malformed, ctx.tvb(at), msg)
  else
    root(ctx):add_proto_expert_info(ctx.E.malformed, msg)
  end
  return false
end

-- The capture holds nothing of the message from here on: stop walking (not an error).
local function cut(ctx)
  ctx.cut = true
  ctx.stop = true
  return true
end

-- The summary bookkeeping of a struct: whether its key fields go into the summary.
local function summary_keys(ctx, s, index, quiet)
  if not ctx.cols or quiet or s.key == G.HDR.struct then return false end
  if index then
    if ctx.arr and ctx.arr.name == s.name then
      ctx.arr.n = index + 1
    else
      flush(ctx)
      ctx.arr = { name = s.name, n = index + 1 }
    end
    return false
  end
  flush(ctx)
  return true
end

-- Adds struct `s` at message offset `off` under `parent` (nil: the root), whose item is `plen`
-- bytes; `index` for array elements; `quiet` for views that are not parts of their own (no
-- summary, no values). A struct the capture cut shows the fields it holds whole, and the walk
-- stops after it.
local function add_struct(ctx, parent, plen, s, off, index, quiet)
  local have = ctx.cap - off
  if have < s.size then
    cut(ctx)
    if have <= 0 then return end
  else
    have = s.size
  end
  local keys = ctx.cols and summary_keys(ctx, s, index, quiet)
  local t, i0
  if off + have <= ctx.wlen then t, i0 = ctx.w, off + 1 else t, i0 = bytes_at(ctx, off, have) end
  local vals = ctx.vals
  if not ctx.full and (s.dead == GEN or dead(s)) then
    -- Nothing to add: the values the walk (and the summary) use, and the reserved-field check.
    if not keys and not quiet and have == s.size then
      if s.read(t, i0, vals) then
        -- A reserved field is not zero: which ones, as below.
        local fields = s.fields
        for k = 1, #fields do
          local fd = fields[k]
          if fd.show == "reserved" and not all_zero(t, i0 + fd.off, fd.size) then
            (parent or root(ctx)):add_proto_expert_info(ctx.E.reserved)
          end
        end
      end
      local list = s.viewed
      for k = 1, #list do
        local fd = list[k]
        for j = 1, #fd.views do
          local vs = fd.views[j]
          if vs.size <= fd.size then add_struct(ctx, parent, plen, vs, off + fd.off, nil, true) end
        end
      end
      return
    end
    local fields = s.fields
    for k = 1, #fields do
      local fd = fields[k]
      if fd.off + fd.size > have then break end
      local sum = keys and fd.summary and (ctx.reply or not fd.reply_only)
      if fd.need or sum or fd.show == "reserved" or fd.views then
        local v = decode(t, i0 + fd.off, fd)
        local at = off + fd.off
        if not quiet then vals[fd.key] = v end
        if fd.show == "reserved" and not all_zero(t, i0 + fd.off, fd.size) then
          (parent or root(ctx)):add_proto_expert_info(ctx.E.reserved)
        end
        if fd.views then
          for _, vs in ipairs(fd.views) do
            if vs.size <= fd.size then add_struct(ctx, parent, plen, vs, at, nil, true) end
          end
        end
        if sum then ctx.sum[#ctx.sum + 1] = fd.name .. "=" .. value_text(ctx, fd, v, at) end
      end
    end
    return
  end
  local it, ilen = item(ctx, parent, plen, s.pf, off, have)
  if it then
    if index and ctx.full then it:append_text(" [" .. int(index) .. "]") end
  else
    it, ilen = parent, plen
  end
  for _, fd in ipairs(s.fields) do
    if fd.off + fd.size > have then break end
    local v = decode(t, i0 + fd.off, fd)
    local at = off + fd.off
    if not quiet then vals[fd.key] = v end
    local how = fd.le and "le" or nil
    if fd.show == "text" then how = "z" end
    local fi, flen = item(ctx, it, ilen, fd.pf, at, fd.size, how)
    if fd.parts then
      local pp, pl = fi, flen
      if not fi then pp, pl = it, ilen end
      local phow = fd.le and "le" or nil
      for _, p in ipairs(fd.parts) do
        if p.pf then item(ctx, pp, pl, p.pf, at, fd.size, phow) end
      end
    end
    if fi and ctx.full and fd.show == "errno" and v == 0 then fi:set_text(fd.name .. ": 0") end
    if fd.show == "reserved" and not all_zero(t, i0 + fd.off, fd.size) then
      (fi or it or root(ctx)):add_proto_expert_info(ctx.E.reserved)
    end
    if fd.views then
      for _, vs in ipairs(fd.views) do
        if vs.size <= fd.size then
          if fi then add_struct(ctx, fi, flen, vs, at, nil, true) else add_struct(ctx, it, ilen, vs, at, nil, true) end
        end
      end
    end
    if keys and fd.summary and (ctx.reply or not fd.reply_only) then
      ctx.sum[#ctx.sum + 1] = fd.name .. "=" .. value_text(ctx, fd, v, at)
    end
  end
end

-- A run of `len` data bytes at `off`; what the capture holds of it when it cut the message.
local function add_data(ctx, kind, off, len)
  if len <= 0 then return end
  local d = G.DATA[kind]
  local n = len
  if off + n > ctx.cap then
    n = ctx.cap - off
    cut(ctx)
  end
  if ctx.cols then
    flush(ctx)
    if d.word then
      if d.text then
        local t = ""
        if n > 0 then t = ctx.tvb(off, n):string(ENC_UTF_8) end
        ctx.sum[#ctx.sum + 1] = d.word .. "=" .. t
      else
        ctx.sum[#ctx.sum + 1] = d.word .. "=" .. int(len) .. "B"
      end
    end
  end
  if n > 0 and (ctx.full or KEEP[d.pf] ~= false) then item(ctx, nil, ctx.rlen, d.pf, off, n, d.text and "utf8" or nil) end
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
  for k = 1, #steps do
    if ctx.stop then return true end
    local st = steps[k]
    if not OPS[st.op](ctx, st) then return false end
  end
  return true
end

function OPS.struct(ctx, st)
  local s = S[st.s]
  local have = ctx.limit - ctx.pos
  if have < s.size then
    return fail(ctx, "short_body", sfmt("%s needs %d bytes, payload has %d", s.name, s.size, have), ctx.pos)
  end
  add_struct(ctx, nil, ctx.rlen, s, ctx.pos)
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
      sfmt("%s = %s but only %d bytes follow", FD[st.count].name, dec(v), have), ctx.pos)
  end
  for k = 0, n - 1 do
    add_struct(ctx, nil, ctx.rlen, s, ctx.pos, k)
    ctx.pos = ctx.pos + s.size
    if ctx.cut then return true end
  end
  return true
end

function OPS.data(ctx, st)
  local v = ctx.vals[st.len]
  local n = tonum(v)
  local have = ctx.limit - ctx.pos
  if n > have then
    return fail(ctx, "count_exceeds_payload",
      sfmt("%s = %s but only %d bytes follow", FD[st.len].name, dec(v), have), ctx.pos)
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
  if limit > ctx.cap then
    -- Cut: the text as far as it goes, unchecked.
    add_data(ctx, "json", pos, limit - 1 - pos)
    return cut(ctx)
  end
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

-- The value of field key `k` (a field of struct `s`) of the struct at message offset `off`.
local function value_at(ctx, off, k)
  local fd = FD[k]
  local b, i = bytes_at(ctx, off + fd.off, fd.size)
  return tonum(decode(b, i, fd))
end

-- The capability chain of a region-info reply (vfio-user spec §2.5), checked as the codec checks it;
-- capability offsets count from the payload start.
function OPS.region_caps(ctx, st)
  local base = G.HEADER_SIZE
  local fixed = S[st.info].size
  local start = ctx.pos
  local area = ctx.limit - start
  local first = 0
  if masked(ctx.vals[st.flags], st.mlo, st.mhi) ~= 0 then first = tonum(ctx.vals[st.first]) end
  if first == 0 then return OPS.rest(ctx, { kind = "cap_area" }) end
  -- Cut: the area as far as it goes, not walked.
  if ctx.limit > ctx.cap then return OPS.rest(ctx, { kind = "cap_area" }) end
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
        sfmt("region capability at payload offset %d overlaps the %d-byte fixed part", at, fixed), base + from)
    end
    if rest < hdr.size then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_out_of_bounds",
        sfmt("region capability at payload offset %d is outside the %d-byte payload", at, fixed + area), base + from)
    end
    local id = value_at(ctx, base + at, st.id)
    local nxt = value_at(ctx, base + at, st.next)
    if nxt ~= 0 and nxt <= at then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_loop",
        sfmt("region capability at payload offset %d has next = %d, which does not move forward", at, nxt), base + at + FD[st.next].off)
    end
    seen = seen + 1
    if seen > st.max then
      OPS.rest(ctx, { kind = "cap_area" })
      return fail(ctx, "cap_loop", sfmt("more than %d region capabilities", st.max), base + at)
    end
    local kind = st.kinds[id]
    local cap = { at = at, s = S[st.unknown], n = 0 }
    if kind then
      local head = S[kind.head]
      local need = head.size
      if rest < need then
        OPS.rest(ctx, { kind = "cap_area" })
        return fail(ctx, "cap_truncated",
          sfmt("region capability %d needs %d bytes, %d are left", id, need, rest), base + at)
      end
      cap.s = head
      if kind.count then
        local n = value_at(ctx, base + at, kind.count)
        local area_s = S[kind.area]
        need = head.size + n * area_s.size
        if rest < need then
          OPS.rest(ctx, { kind = "cap_area" })
          return fail(ctx, "cap_truncated",
            sfmt("region capability %d needs %d bytes, %d are left", id, need, rest), base + at)
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
    add_struct(ctx, nil, ctx.rlen, c.s, o)
    o = o + c.s.size
    for k = 0, c.n - 1 do
      add_struct(ctx, nil, ctx.rlen, c.area, o, k)
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
      sfmt("no IO_FDS entry size fits argsz %d, count %d and %d bytes", argsz, n, rest), ctx.pos)
  end
  local s = S[entry.s]
  if rest < n * s.size then
    return fail(ctx, "short_body", sfmt("%s entries need %d bytes, payload has %d", s.name, n * s.size, rest), ctx.pos)
  end
  for k = 0, n - 1 do
    add_struct(ctx, nil, ctx.rlen, s, ctx.pos, k)
    ctx.pos = ctx.pos + s.size
    if ctx.cut then return true end
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
    len, page = u64(len), u64(page)
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

local function comment_words(m, ...)
  for k = 1, select("#", ...) do
    local c = select(k, ...)
    for w in tostring(c.value):gmatch("%S+") do
      local num = w:sub(1, #G.COMMENT_FDS) == G.COMMENT_FDS and tonumber(w:sub(#G.COMMENT_FDS + 1))
      if num then m.fds = m.fds + num end
      if w == G.COMMENT_TRUNCATED then m.truncated = true end
    end
  end
end

local function record_meta(ctx, pinfo, proto_name)
  local X = G.X[proto_name]
  local rlen = ctx.rlen
  local m = ctx
  m.dir, m.conn, m.fds, m.truncated, m.fields_ok, m.ts = A.p2p_dir(pinfo), 0, 0, false, false, nil
  -- Field values exist only when Wireshark builds a tree for the frame (not in the first pass of
  -- `tshark -2` without a filter): pairing needs the connection, so it waits for such a pass.
  if f_iface then
    local fi = f_iface()
    if fi then m.conn, m.fields_ok = fi_value(fi), true end
  end
  if f_comment and f_comment() then comment_words(m, f_comment()) end
  if not m.fields_ok and f_time then
    local t = f_time()
    if t then m.ts, m.fields_ok = fi_value(t), true end
  end
  m.dname = G.DIR[m.dir]
  if ctx.full then
    local root = ctx.tree
    root:add(X.dir, m.dname or "?"):set_generated()
    root:add(X.conn, m.conn):set_generated()
    root:add(X.fds, m.fds):set_generated()
    root:add(X.truncated, m.truncated):set_generated()
  elseif META_DEAD[proto_name] ~= GEN then
    keep(ctx, nil, rlen, X.dir, 0, 0, "v", m.dname or "?")
    keep(ctx, nil, rlen, X.conn, 0, 0, "v", m.conn)
    keep(ctx, nil, rlen, X.fds, 0, 0, "v", m.fds)
    keep(ctx, nil, rlen, X.truncated, 0, 0, "v", m.truncated)
    if KEEP[X.dir] == false and KEEP[X.conn] == false and KEEP[X.fds] == false
      and KEEP[X.truncated] == false then
      META_DEAD[proto_name] = GEN
    end
  end
  if m.truncated then root(ctx):add_proto_expert_info(E[proto_name].truncated) end
  if not m.dname then root(ctx):add_proto_expert_info(E[proto_name].no_direction) end
  return m
end

-- The frame's time (NSTime), read when pairing or a round-trip time needs it.
local function frame_time(m)
  if m.ts == nil and f_time then
    local t = f_time()
    if t then m.ts = fi_value(t) end
  end
  return m.ts
end

-- Reply time minus request time, never negative (as vfu-dump computes it).
local function rtt(reply, request)
  local d = reply - request
  if d.secs < 0 then return NSTime(0, 0) end
  return d
end

-- Per protocol, by key (connection, direction, id) the frame and time of each request waiting for
-- its reply (and, VDUSE, its type); by frame number, the request of each paired reply and that
-- request's time (and type), and the reply of each paired request; and the last frame paired.
local T = {}
local function reset()
  for _, p in ipairs({ "vfio_user", "vduse" }) do
    T[p] = { wait_frame = {}, wait_ts = {}, wait_type = {}, request = {}, request_ts = {},
      request_type = {}, reply = {}, last = 0 }
  end
  new_pass()
  last_frame = -1
end
reset()
function P_VFIO.init() reset() end
function P_VDUSE.init() reset() end
function P_IOCTL.init() reset() end

-- Whether to pair this frame now: once per frame, in frame order (a frame visited out of order, say
-- clicked in the GUI before the first pass saw it, is not paired).
local function pairing_now(state, m)
  local n = m.n
  if not m.fields_ok or n <= state.last then return false end
  state.last = n
  return true
end

local function wait(state, key, n, m, typ)
  state.wait_frame[key], state.wait_ts[key] = n, frame_time(m)
  if typ then state.wait_type[key] = typ end
end

-- Pairs reply frame n with the request waiting under key, if any.
local function answer(state, key, n)
  local req = state.wait_frame[key]
  if not req then return end
  state.request[n], state.request_ts[n], state.request_type[n] = req, state.wait_ts[key], state.wait_type[key]
  state.reply[req] = n
  state.wait_frame[key], state.wait_ts[key], state.wait_type[key] = nil, nil, nil
end

-- The links of frame n: the request it answers and the round-trip time, the reply it got.
local function show_links(ctx, m, proto_name, state, n)
  local X = G.X[proto_name]
  local req, rsp = state.request[n], state.reply[n]
  if ctx.full then
    local root = ctx.tree
    if req then
      root:add(X.response_to, req):set_generated()
      local now = frame_time(m)
      if now then root:add(X.time, rtt(now, state.request_ts[n])):set_generated() end
    end
    if rsp then root:add(X.response_in, rsp):set_generated() end
  else
    if req then
      keep(ctx, nil, ctx.rlen, X.response_to, 0, 0, "v", req)
      if KEEP[X.time] ~= false then
        local now = frame_time(m)
        if now then keep(ctx, nil, ctx.rlen, X.time, 0, 0, "v", rtt(now, state.request_ts[n])) end
      end
    end
    if rsp then keep(ctx, nil, ctx.rlen, X.response_in, 0, 0, "v", rsp) end
  end
end

-- " [cut: 4096 of 65552 bytes captured]", after the expert info and the captured-length field.
local function show_cut(ctx, proto_name)
  if ctx.rep <= ctx.cap then return "" end
  local pf = G.X[proto_name].captured
  if ctx.full then
    ctx.tree:add(pf, ctx.cap):set_generated()
  else
    keep(ctx, nil, ctx.rlen, pf, 0, 0, "v", ctx.cap)
  end
  root(ctx):add_proto_expert_info(ctx.E.cut,
    sfmt("Message cut by the capture: %d of %d bytes captured", ctx.cap, ctx.rep))
  return sfmt(" [cut: %d of %d bytes captured]", ctx.cap, ctx.rep)
end

-- ------------------------------------------------------------------------------------------------
-- vfio-user.

-- The header's flags are tested with arithmetic (bit32 calls cost more): the type is the low bits
-- and NO_REPLY and ERROR are single bits, as the checks below make sure.
local TYPE_MOD = G.F.TYPE_MASK + 1
assert(band(G.F.TYPE_MASK, TYPE_MOD) == 0 and band(TYPE_MOD, TYPE_MOD - 1) == 0, "type mask")
for _, b in ipairs({ G.F.NO_REPLY, G.F.ERROR }) do assert(band(b, b - 1) == 0, "flag bit") end

function P_VFIO.dissector(tvb, pinfo, tree)
  local ctx = new_ctx(tvb, pinfo, tree, "vfio_user")
  local cols = ctx.cols
  local m = record_meta(ctx, pinfo, "vfio_user")
  local len, cap = ctx.rep, ctx.cap
  local H = G.HDR
  local hdr = S[H.struct]
  local info
  if len < hdr.size then
    fail(ctx, "short_header", sfmt("only %d bytes, a header needs %d", len, hdr.size), 0)
    if cols then info = "malformed: " .. ctx.error end
  elseif cap < hdr.size then
    add_struct(ctx, nil, ctx.rlen, hdr, 0)
    if cols then info = "cut inside the header" end
  else
    add_struct(ctx, nil, ctx.rlen, hdr, 0)
    local v = ctx.vals
    local id, cmd, size, flags = v[H.id], v[H.cmd], v[H.size], v[H.flags]
    local errno = v[H.errno]
    local typ = flags % TYPE_MOD
    local reply = typ == G.F.TYPE_REPLY
    local is_error = flags % (G.F.ERROR * 2) >= G.F.ERROR
    if size < hdr.size then
      fail(ctx, "msg_size_below_header", sfmt("msg_size %d is smaller than the %d-byte header", size, hdr.size), 4)
    elseif len < size then
      fail(ctx, "msg_truncated", sfmt("msg_size says %d bytes but only %d are present", size, len), len)
    elseif len > size then
      fail(ctx, "msg_overlong", sfmt("msg_size says %d bytes but %d were given", size, len), size)
    elseif typ ~= G.F.TYPE_COMMAND and typ ~= G.F.TYPE_REPLY then
      fail(ctx, "bad_message_type", sfmt("message type %d is neither command (0) nor reply (1)", typ), 8)
    else
      ctx.pos, ctx.limit, ctx.reply = hdr.size, size, reply
      if reply and is_error then
        root(ctx):add_proto_expert_info(ctx.E.error_reply,
          "Error reply: " .. (G.VS_ERRNO[errno] or "errno") .. " (" .. int(errno) .. ")")
      else
        local body = G.BODIES[cmd]
        local steps = G.UNKNOWN_BODY
        if body then
          steps = reply and body.reply or body.request
        else
          root(ctx):add_proto_expert_info(ctx.E.unknown_command, "Unknown command " .. int(cmd))
        end
        run(ctx, steps)
      end
      if not ctx.failed and not ctx.cut then add_data(ctx, "trailing", ctx.pos, ctx.limit - ctx.pos) end
      if cols then flush(ctx) end
    end
    if cols then
      local name = G.CMD_SHORT[cmd] or ("UNKNOWN(" .. int(cmd) .. ")")
      if ctx.failed then
        info = sfmt("id=%d %s %dB malformed: %s", id, name, size, ctx.error)
      else
        local kind
        if reply then
          if is_error then kind = (G.VS_ERRNO[errno] or "?") .. "(" .. int(errno) .. ")" else kind = "ok" end
        elseif flags % (G.F.NO_REPLY * 2) >= G.F.NO_REPLY then
          kind = "cmd,no-reply"
        else
          kind = "cmd"
        end
        info = sfmt("id=%d %s %s %dB", id, name, kind, size)
        if #ctx.sum > 0 then info = info .. " " .. concat(ctx.sum, " ") end
      end
    end
    -- Pairing, as vfu-dump does it: (connection, direction, msg_id) of every message whose header
    -- says command or reply, a malformed one included.
    local state = T.vfio_user
    local n = ctx.n
    if pairing_now(state, m) and (typ == G.F.TYPE_COMMAND or reply) and m.dname then
      if reply then
        local other = m.dir == G.P2P.c2s and G.P2P.s2c or G.P2P.c2s
        answer(state, (m.conn * 2 + other) * 65536 + id, n)
      elseif flags % (G.F.NO_REPLY * 2) < G.F.NO_REPLY then
        wait(state, (m.conn * 2 + m.dir) * 65536 + id, n, m)
      end
    end
    if state.request[n] or state.reply[n] then show_links(ctx, m, "vfio_user", state, n) end
  end
  local cut_text = show_cut(ctx, "vfio_user")
  if cols then
    if m.fds > 0 then info = info .. " fds=" .. int(m.fds) end
    if m.truncated then info = info .. " [truncated]" end
    local c = pinfo.cols
    c.protocol = G.COLUMN.vfio_user
    c.info = info .. cut_text
  end
  return cap
end

-- ------------------------------------------------------------------------------------------------
-- VDUSE: one 152-byte request (kernel to daemon) or response (daemon to kernel); the union member
-- follows the request type, and a response's follows the type of the request it answers.

function P_VDUSE.dissector(tvb, pinfo, tree)
  local ctx = new_ctx(tvb, pinfo, tree, "vduse")
  local cols = ctx.cols
  local m = record_meta(ctx, pinfo, "vduse")
  local len = ctx.rep
  local V = G.VDUSE
  local state = T.vduse
  local n = ctx.n
  local info
  if len ~= V.size then
    fail(ctx, "vduse_size", sfmt("a VDUSE message is %d bytes, this one %d", V.size, len), 0)
    info = "malformed: " .. ctx.error
  elseif ctx.cap < V.size then
    if m.dir == G.P2P.c2s then
      add_struct(ctx, nil, ctx.rlen, S[V.request], 0)
      info = "VDUSE request"
    elseif m.dir == G.P2P.s2c then
      add_struct(ctx, nil, ctx.rlen, S[V.response], 0)
      info = "VDUSE response"
    else
      info = "VDUSE message, direction unknown"
    end
  elseif m.dir == G.P2P.c2s then
    add_struct(ctx, nil, ctx.rlen, S[V.request], 0)
    local t = tonum(ctx.vals[V.req_type])
    local id = tonum(ctx.vals[V.request_id])
    local tname = FD[V.req_type].vs and FD[V.req_type].vs[t]
    local member = V.request_members[t]
    if member then
      add_struct(ctx, nil, ctx.rlen, S[member], V.union)
    else
      root(ctx):add_proto_expert_info(ctx.E.unknown_command, "Unknown request type " .. int(t))
    end
    if cols then
      if tname then
        info = sfmt("VDUSE_%s (%d) id %d", tname, t, id)
      else
        info = sfmt("VDUSE request type %d id %d", t, id)
      end
      if member then
        local parts = {}
        local b, i0 = bytes_at(ctx, V.union, S[member].size)
        for _, fd in ipairs(S[member].fields) do
          if fd.show ~= "reserved" then
            local v = decode(b, i0 + fd.off, fd)
            parts[#parts + 1] = fd.name .. "=" .. value_text(ctx, fd, v, V.union + fd.off)
          end
        end
        if #parts > 0 then info = info .. " " .. concat(parts, " ") end
      end
    end
    if pairing_now(state, m) then wait(state, m.conn * TWO32 + id, n, m, t) end
  elseif m.dir == G.P2P.s2c then
    add_struct(ctx, nil, ctx.rlen, S[V.response], 0)
    local id = tonum(ctx.vals[V.response_id])
    local result = tonum(ctx.vals[V.result])
    if pairing_now(state, m) then answer(state, m.conn * TWO32 + id, n) end
    local typ = state.request_type[n]
    local member = typ and V.response_members[typ]
    if member then add_struct(ctx, nil, ctx.rlen, S[member], V.union) end
    local rname = FD[V.result].vs and FD[V.result].vs[result]
    info = sfmt("response id %d %s", id, result == V.result_ok and (rname or "OK") or
      sfmt("%s (%d)", rname or "result", result))
  else
    info = "VDUSE message, direction unknown"
  end
  if state.request[n] or state.reply[n] then show_links(ctx, m, "vduse", state, n) end
  local cut_text = show_cut(ctx, "vduse")
  if cols then
    if m.truncated then info = info .. " [truncated]" end
    local c = pinfo.cols
    c.protocol = G.COLUMN.vduse
    c.info = info .. cut_text
  end
  return ctx.cap
end

-- ------------------------------------------------------------------------------------------------
-- VDUSE ioctl records: a head (request, result, argument length, which copies follow), then the
-- argument as it went in and as the kernel left it, each shown with the VDUSE struct the request
-- number names.

function P_IOCTL.dissector(tvb, pinfo, tree)
  local ctx = new_ctx(tvb, pinfo, tree, "vduse_ioctl")
  local cols = ctx.cols
  local m = record_meta(ctx, pinfo, "vduse_ioctl")
  local len, cap = ctx.rep, ctx.cap
  local I = G.IOCTL
  local head = S[I.head]
  local info
  if len < head.size then
    fail(ctx, "ioctl_record", sfmt("an ioctl record has a %d-byte head, this one %d bytes", head.size, len), 0)
    info = "malformed: " .. ctx.error
  elseif cap < head.size then
    add_struct(ctx, nil, ctx.rlen, head, 0, nil, true)
    info = "cut inside the head"
  else
    add_struct(ctx, nil, ctx.rlen, head, 0, nil, true)
    local b, i0 = bytes_at(ctx, 0, head.size)
    local function field(k) return tonum(decode(b, i0 + FD[k].off, FD[k])) end
    local req, result, alen, flags = field(I.request), field(I.result), field(I.arg_len), field(I.flags)
    local d = G.IOCTLS[req]
    info = (d and d.name or sfmt("ioctl 0x%08x", req)) .. " = " .. int(result)
    if result < 0 then
      local n = G.VS_ERRNO and G.VS_ERRNO[-result]
      if n then info = info .. " " .. n end
    end
    local copies = (band(flags, 1) ~= 0 and 1 or 0) + (band(flags, 2) ~= 0 and 1 or 0)
    if head.size + alen * copies ~= len then
      fail(ctx, "ioctl_record", sfmt("arg_len %d with %d copies does not fill the %d-byte record", alen, copies, len), 8)
      info = info .. " [malformed]"
    else
      local off = head.size
      for _, c in ipairs({ { 1, "arg_in" }, { 2, "arg_out" } }) do
        if band(flags, c[1]) ~= 0 then
          -- What the capture holds of the copy.
          local have = alen
          if off + have > cap then have = cap - off end
          if have > 0 then
            local it, ilen = item(ctx, nil, ctx.rlen, G.X.vduse_ioctl[c[2]], off, have)
            local s = d and d.s and S[d.s]
            if s and alen >= s.size then
              if it then add_struct(ctx, it, ilen, s, off, nil, true) else add_struct(ctx, nil, ctx.rlen, s, off, nil, true) end
            end
          end
          off = off + alen
        end
      end
    end
  end
  local cut_text = show_cut(ctx, "vduse_ioctl")
  if cols then
    if m.fds > 0 then info = info .. " fds=" .. int(m.fds) end
    if m.truncated then info = info .. " [truncated]" end
    local c = pinfo.cols
    c.protocol = G.COLUMN.vduse_ioctl
    c.info = info .. cut_text
  end
  return cap
end
