//! The body tables (`Step`s) and region capabilities as Lua tables for the runtime.

use std::fmt::Write as _;

use vfu_codec::DataKind;

use super::names::{PROTO_VFIO_USER, lua_num, lua_str, snake, struct_key};
use super::tables::{FieldRef, RegionCaps, Step, UNKNOWN_CAP};

/// The runtime's key of a field: `dma_unmap.flags`.
pub(super) fn ref_key(proto: &str, r: &FieldRef) -> Result<String, String> {
    let f = r
        .field()
        .ok_or_else(|| format!("{} has no field at offset {}", r.layout.name, r.offset))?;
    Ok(format!("{}.{}", struct_key(proto, &r.layout), f.name))
}

fn kind_key(kind: DataKind) -> String {
    snake(&format!("{kind:?}"))
}

pub(super) fn steps_lua(steps: &[Step]) -> Result<String, String> {
    let p = PROTO_VFIO_USER;
    let mut s = String::from("{");
    for st in steps {
        let one = match *st {
            Step::Struct(l) => {
                format!("{{ op = \"struct\", s = {} }}", lua_str(&struct_key(p, &l)))
            }
            Step::Array { elem, count } => format!(
                "{{ op = \"array\", s = {}, count = {} }}",
                lua_str(&struct_key(p, &elem)),
                lua_str(&ref_key(p, &count)?)
            ),
            Step::Data { kind, len } => format!(
                "{{ op = \"data\", kind = {}, len = {} }}",
                lua_str(&kind_key(kind)),
                lua_str(&ref_key(p, &len)?)
            ),
            Step::Rest(kind) => format!("{{ op = \"rest\", kind = {} }}", lua_str(&kind_key(kind))),
            Step::StopIfEmpty => "{ op = \"stop_if_empty\" }".to_owned(),
            Step::IfFlag { field, mask, then } => format!(
                "{{ op = \"if_flag\", field = {}, mlo = {}, mhi = {}, steps = {} }}",
                lua_str(&ref_key(p, &field)?),
                mask & 0xffff_ffff,
                mask >> 32,
                steps_lua(then)?
            ),
            Step::IfNonEmpty(then) => {
                format!("{{ op = \"if_nonempty\", steps = {} }}", steps_lua(then)?)
            }
            Step::Switch {
                field,
                mask,
                cases,
                default,
            } => {
                let mut c = String::from("{");
                for case in cases {
                    let vals: Vec<String> = case
                        .values
                        .iter()
                        .map(|&v| lua_num(v))
                        .collect::<Result<_, _>>()?;
                    let _ = write!(
                        c,
                        " {{ values = {{ {} }}, steps = {} }},",
                        vals.join(", "),
                        steps_lua(case.steps)?
                    );
                }
                c.push_str(" }");
                format!(
                    "{{ op = \"switch\", field = {}, mlo = {}, mhi = {}, shift = {}, cases = {c}, default = {} }}",
                    lua_str(&ref_key(p, &field)?),
                    mask & 0xffff_ffff,
                    mask >> 32,
                    if mask == 0 { 0 } else { mask.trailing_zeros() },
                    steps_lua(default)?
                )
            }
            Step::Json => "{ op = \"json\" }".to_owned(),
            Step::RegionCaps(rc) => region_caps_lua(rc)?,
            Step::IoFdEntries {
                head,
                argsz,
                count,
                entries,
            } => {
                let mut e = String::from("{");
                for l in entries {
                    let _ = write!(
                        e,
                        " {{ size = {}, s = {} }},",
                        l.size,
                        lua_str(&struct_key(p, l))
                    );
                }
                e.push_str(" }");
                format!(
                    "{{ op = \"io_fds\", head = {}, argsz = {}, count = {}, entries = {e} }}",
                    lua_str(&struct_key(p, &head)),
                    lua_str(&ref_key(p, &argsz)?),
                    lua_str(&ref_key(p, &count)?)
                )
            }
            Step::ReportBitmap { length, page_size } => format!(
                "{{ op = \"report_bitmap\", length = {}, page = {} }}",
                lua_str(&ref_key(p, &length)?),
                lua_str(&ref_key(p, &page_size)?)
            ),
        };
        s.push(' ');
        s.push_str(&one);
        s.push(',');
    }
    s.push_str(" }");
    Ok(s)
}

fn region_caps_lua(rc: &RegionCaps) -> Result<String, String> {
    let p = PROTO_VFIO_USER;
    let mut kinds = String::from("{");
    for k in rc.kinds {
        let _ = write!(
            kinds,
            " [{}] = {{ head = {}",
            lua_num(k.id)?,
            lua_str(&struct_key(p, &k.head))
        );
        if let Some((count, area)) = k.areas {
            let _ = write!(
                kinds,
                ", count = {}, area = {}",
                lua_str(&ref_key(p, &count)?),
                lua_str(&struct_key(p, &area))
            );
        }
        kinds.push_str(" },");
    }
    kinds.push_str(" }");
    if rc.id.layout.name != rc.next.layout.name {
        return Err("a capability's id and next must be in one header struct".to_owned());
    }
    Ok(format!(
        "{{ op = \"region_caps\", info = {}, flags = {}, mlo = {}, mhi = {}, first = {}, header = {}, id = {}, next = {}, unknown = {}, max = {}, kinds = {kinds} }}",
        lua_str(&struct_key(p, &rc.info)),
        lua_str(&ref_key(p, &rc.flags)?),
        rc.caps_flag & 0xffff_ffff,
        rc.caps_flag >> 32,
        lua_str(&ref_key(p, &rc.first)?),
        lua_str(&struct_key(p, &rc.id.layout)),
        lua_str(&ref_key(p, &rc.id)?),
        lua_str(&ref_key(p, &rc.next)?),
        lua_str(&struct_key(p, &UNKNOWN_CAP)),
        rc.max
    ))
}
