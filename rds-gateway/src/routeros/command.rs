//! Typed builders for every RouterOS command the gateway runs; `Display` / [`Command::to_line`] gives
//! the exact CLI line.
//!
//! Builders take only validated values ([`Slot`], [`ImagePath`], [`Nqn`], [`Bytes`], ...), keep their
//! fields private and have no constructor taking text, so there is no way to put a raw string on a
//! command line. Sizes are written as exact integer bytes. Values that RouterOS needs quoted (`where
//! name="..."`, regular expressions, comments) go through one quoting function that escapes `\`, `"`
//! and `$` even though validated values never contain them.
//!
//! Every print has a text form (`print detail`, for any RouterOS 7) and, for 7.13 and later, a JSON
//! form (`:put [:serialize to=json [<print> as-value ...]]`); [`Command::output`] tells the caller
//! which decoder to use.

use std::fmt;

use super::error::Subject;
use super::names::{
    Comment, Field, ImagePath, InvalidValue, Nqn, PoolPath, Port, Slot, SlotPrefix,
};
use super::size::Bytes;

/// Which form a print should produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `print detail` text: decode with `text::parse_detail`.
    #[default]
    Text,
    /// `:serialize to=json`: decode with `json::parse_json` (RouterOS 7.13 and later).
    Json,
}

/// What a command prints on success, and so which decoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Nothing (mutations); any text is a failure message.
    Nothing,
    /// `print detail` records.
    Detail,
    /// A JSON array or object.
    Json,
    /// `key: value` lines.
    Colon,
}

/// A command ready to run.
pub trait Command: fmt::Display {
    /// Short name for metrics and spans (`disk-add`, `disk-print`, ...).
    fn verb(&self) -> &'static str;
    /// What the command prints on success.
    fn output(&self) -> Output;
    /// What the command is about, for errors.
    fn subject(&self) -> Subject;
    /// The exact CLI line.
    fn to_line(&self) -> String {
        self.to_string()
    }
}

/// Quotes a value for RouterOS. Validated values never contain `\`, `"` or `$`, but they are escaped
/// anyway so that quoting alone could never be the reason a line is unsafe.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn output_of(format: Format) -> Output {
    match format {
        Format::Text => Output::Detail,
        Format::Json => Output::Json,
    }
}

/// Writes `<menu> print detail where <condition>` in the requested form.
fn write_print(
    f: &mut fmt::Formatter<'_>,
    menu: &str,
    condition: &str,
    format: Format,
) -> fmt::Result {
    match format {
        Format::Text => write!(f, "{menu} print detail where {condition}"),
        Format::Json => write!(
            f,
            ":put [:serialize to=json [{menu} print detail as-value where {condition}]]"
        ),
    }
}

fn check_disk_size(size: Bytes) -> Result<Bytes, InvalidValue> {
    if size == Bytes::ZERO {
        return Err(InvalidValue::new(
            Field::Size,
            "0",
            "a disk cannot be empty",
        ));
    }
    if !size.is_aligned() {
        return Err(InvalidValue::new(
            Field::Size,
            &size.to_string(),
            "not rounded to the appliance granularity (use size::round_up)",
        ));
    }
    Ok(size)
}

/// The NVMe/TCP export settings of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeExport {
    /// Listening port.
    pub port: Port,
    /// Subsystem NQN.
    pub nqn: Nqn,
}

impl fmt::Display for NvmeExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nvme-tcp-export=yes nvme-tcp-server-port={} nvme-tcp-server-nqn={}",
            self.port, self.nqn
        )
    }
}

/// `/disk add type=file file-path=<image> file-size=<bytes> slot=<slot> nvme-tcp-export=yes ...`:
/// a new exported file disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskAdd {
    slot: Slot,
    image: ImagePath,
    size: Bytes,
    export: NvmeExport,
    comment: Option<Comment>,
}

impl DiskAdd {
    /// A new disk `slot` backed by `<pool>/<slot>.img` of `size` bytes, which must be non-zero and
    /// rounded with `size::round_up`.
    pub fn new(
        pool: &PoolPath,
        slot: &Slot,
        size: Bytes,
        export: NvmeExport,
    ) -> Result<DiskAdd, InvalidValue> {
        Ok(DiskAdd {
            slot: slot.clone(),
            image: ImagePath::new(pool, slot),
            size: check_disk_size(size)?,
            export,
            comment: None,
        })
    }

    /// Adds a structured comment.
    pub fn with_comment(mut self, comment: Comment) -> DiskAdd {
        self.comment = Some(comment);
        self
    }

    /// The backing file the disk will use.
    pub fn image(&self) -> &ImagePath {
        &self.image
    }
}

impl fmt::Display for DiskAdd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/disk add type=file file-path={} file-size={} slot={} {}",
            self.image.absolute(),
            self.size,
            self.slot,
            self.export
        )?;
        if let Some(c) = &self.comment {
            write!(f, " comment={}", quoted(&c.to_string()))?;
        }
        Ok(())
    }
}

impl Command for DiskAdd {
    fn verb(&self) -> &'static str {
        "disk-add"
    }
    fn output(&self) -> Output {
        Output::Nothing
    }
    fn subject(&self) -> Subject {
        Subject::Slot(self.slot.clone())
    }
}

/// `/disk add type=file copy-from=[find slot=<source>] file-path=<image> slot=<slot> ...`: a copy of
/// an existing disk (snapshot, clone, restore), exported or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCopy {
    source: Slot,
    slot: Slot,
    image: ImagePath,
    export: Option<NvmeExport>,
    comment: Option<Comment>,
}

impl DiskCopy {
    /// A copy of `source` as disk `slot` backed by `<pool>/<slot>.img`, not exported.
    pub fn new(source: &Slot, pool: &PoolPath, slot: &Slot) -> Result<DiskCopy, InvalidValue> {
        if source == slot {
            return Err(InvalidValue::new(
                Field::Slot,
                slot.as_str(),
                "a disk cannot be copied onto itself",
            ));
        }
        Ok(DiskCopy {
            source: source.clone(),
            slot: slot.clone(),
            image: ImagePath::new(pool, slot),
            export: None,
            comment: None,
        })
    }

    /// Exports the copy over NVMe/TCP (for clones and restores).
    pub fn exported(mut self, export: NvmeExport) -> DiskCopy {
        self.export = Some(export);
        self
    }

    /// Adds a structured comment.
    pub fn with_comment(mut self, comment: Comment) -> DiskCopy {
        self.comment = Some(comment);
        self
    }

    /// The backing file the copy will use.
    pub fn image(&self) -> &ImagePath {
        &self.image
    }
}

impl fmt::Display for DiskCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/disk add type=file copy-from=[find slot={}] file-path={} slot={}",
            self.source,
            self.image.absolute(),
            self.slot
        )?;
        if let Some(e) = &self.export {
            write!(f, " {e}")?;
        }
        if let Some(c) = &self.comment {
            write!(f, " comment={}", quoted(&c.to_string()))?;
        }
        Ok(())
    }
}

impl Command for DiskCopy {
    fn verb(&self) -> &'static str {
        "disk-copy"
    }
    fn output(&self) -> Output {
        Output::Nothing
    }
    fn subject(&self) -> Subject {
        Subject::Slot(self.slot.clone())
    }
}

/// `/disk print detail where slot=<slot>`: one disk (prints nothing when it does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPrint {
    slot: Slot,
    format: Format,
}

impl DiskPrint {
    /// Prints disk `slot` as text.
    pub fn new(slot: &Slot) -> DiskPrint {
        DiskPrint {
            slot: slot.clone(),
            format: Format::Text,
        }
    }

    /// The same print in the requested form.
    pub fn format(mut self, format: Format) -> DiskPrint {
        self.format = format;
        self
    }
}

impl fmt::Display for DiskPrint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_print(f, "/disk", &format!("slot={}", self.slot), self.format)
    }
}

impl Command for DiskPrint {
    fn verb(&self) -> &'static str {
        "disk-print"
    }
    fn output(&self) -> Output {
        output_of(self.format)
    }
    fn subject(&self) -> Subject {
        Subject::Slot(self.slot.clone())
    }
}

/// `/disk print detail where slot~"^<prefix>"`: every disk whose slot starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskList {
    prefix: SlotPrefix,
    format: Format,
}

impl DiskList {
    /// Lists disks whose slot starts with `prefix`, as text.
    pub fn new(prefix: &SlotPrefix) -> DiskList {
        DiskList {
            prefix: prefix.clone(),
            format: Format::Text,
        }
    }

    /// The same print in the requested form.
    pub fn format(mut self, format: Format) -> DiskList {
        self.format = format;
        self
    }
}

impl fmt::Display for DiskList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pattern = format!("^{}", self.prefix);
        write_print(
            f,
            "/disk",
            &format!("slot~{}", quoted(&pattern)),
            self.format,
        )
    }
}

impl Command for DiskList {
    fn verb(&self) -> &'static str {
        "disk-list"
    }
    fn output(&self) -> Output {
        output_of(self.format)
    }
    fn subject(&self) -> Subject {
        Subject::None
    }
}

/// `/disk set [find slot=<slot>] file-size=<bytes>`: grows a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskResize {
    slot: Slot,
    size: Bytes,
}

impl DiskResize {
    /// Sets disk `slot` to `size` bytes (non-zero, rounded with `size::round_up`).
    pub fn new(slot: &Slot, size: Bytes) -> Result<DiskResize, InvalidValue> {
        Ok(DiskResize {
            slot: slot.clone(),
            size: check_disk_size(size)?,
        })
    }
}

impl fmt::Display for DiskResize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/disk set [find slot={}] file-size={}",
            self.slot, self.size
        )
    }
}

impl Command for DiskResize {
    fn verb(&self) -> &'static str {
        "disk-resize"
    }
    fn output(&self) -> Output {
        Output::Nothing
    }
    fn subject(&self) -> Subject {
        Subject::Slot(self.slot.clone())
    }
}

/// `/disk remove [find slot=<slot>]`: removes a disk but not its backing file (see [`FileRemove`]).
/// An empty `find` is a silent no-op on RouterOS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRemove {
    slot: Slot,
}

impl DiskRemove {
    /// Removes disk `slot`.
    pub fn new(slot: &Slot) -> DiskRemove {
        DiskRemove { slot: slot.clone() }
    }
}

impl fmt::Display for DiskRemove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/disk remove [find slot={}]", self.slot)
    }
}

impl Command for DiskRemove {
    fn verb(&self) -> &'static str {
        "disk-remove"
    }
    fn output(&self) -> Output {
        Output::Nothing
    }
    fn subject(&self) -> Subject {
        Subject::Slot(self.slot.clone())
    }
}

/// `/file remove [find name="<path without leading slash>"]`: removes a disk's backing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRemove {
    image: ImagePath,
}

impl FileRemove {
    /// Removes the backing file `image`.
    pub fn new(image: &ImagePath) -> FileRemove {
        FileRemove {
            image: image.clone(),
        }
    }
}

impl fmt::Display for FileRemove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/file remove [find name={}]",
            quoted(&self.image.relative())
        )
    }
}

impl Command for FileRemove {
    fn verb(&self) -> &'static str {
        "file-remove"
    }
    fn output(&self) -> Output {
        Output::Nothing
    }
    fn subject(&self) -> Subject {
        Subject::Image(self.image.clone())
    }
}

/// `/file print detail where name="<path>"`: one file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePrint {
    name: String,
    subject: Subject,
    format: Format,
}

impl FilePrint {
    /// Prints a disk's backing file.
    pub fn image(image: &ImagePath) -> FilePrint {
        FilePrint {
            name: image.relative(),
            subject: Subject::Image(image.clone()),
            format: Format::Text,
        }
    }

    /// Prints a pool directory.
    pub fn directory(pool: &PoolPath) -> FilePrint {
        FilePrint {
            name: pool.relative().to_owned(),
            subject: Subject::Pool(pool.clone()),
            format: Format::Text,
        }
    }

    /// The same print in the requested form.
    pub fn format(mut self, format: Format) -> FilePrint {
        self.format = format;
        self
    }
}

impl fmt::Display for FilePrint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_print(
            f,
            "/file",
            &format!("name={}", quoted(&self.name)),
            self.format,
        )
    }
}

impl Command for FilePrint {
    fn verb(&self) -> &'static str {
        "file-print"
    }
    fn output(&self) -> Output {
        output_of(self.format)
    }
    fn subject(&self) -> Subject {
        self.subject.clone()
    }
}

/// Where pool capacity is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacitySource {
    /// The pool disk: `/disk print detail where mount-point="<mount>"`.
    MountPoint,
    /// The pool's top directory: `/file print detail where name="<mount>"`.
    File,
}

/// Reads the total and free space of the pool holding a volume base path. Both forms query the
/// pool's mount point (the first component of the path: `storage-pool` for
/// `storage-pool/metal-csi`), which is where `size=` and `free=` are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCapacityQuery {
    pool: PoolPath,
    source: CapacitySource,
    format: Format,
}

impl PoolCapacityQuery {
    /// Capacity from the pool disk.
    pub fn by_mount_point(pool: &PoolPath) -> PoolCapacityQuery {
        PoolCapacityQuery {
            pool: pool.clone(),
            source: CapacitySource::MountPoint,
            format: Format::Text,
        }
    }

    /// Capacity from the pool's directory entry.
    pub fn by_file(pool: &PoolPath) -> PoolCapacityQuery {
        PoolCapacityQuery {
            pool: pool.clone(),
            source: CapacitySource::File,
            format: Format::Text,
        }
    }

    /// The same print in the requested form.
    pub fn format(mut self, format: Format) -> PoolCapacityQuery {
        self.format = format;
        self
    }

    /// Which print is used.
    pub fn source(&self) -> CapacitySource {
        self.source
    }
}

impl fmt::Display for PoolCapacityQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mount = quoted(self.pool.mount_point());
        match self.source {
            CapacitySource::MountPoint => {
                write_print(f, "/disk", &format!("mount-point={mount}"), self.format)
            }
            CapacitySource::File => write_print(f, "/file", &format!("name={mount}"), self.format),
        }
    }
}

impl Command for PoolCapacityQuery {
    fn verb(&self) -> &'static str {
        "pool-capacity"
    }
    fn output(&self) -> Output {
        output_of(self.format)
    }
    fn subject(&self) -> Subject {
        Subject::Pool(self.pool.clone())
    }
}

/// `/disk monitor-traffic <slot> once`: one sample of a disk's I/O rates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskMonitorTraffic {
    slot: Slot,
}

impl DiskMonitorTraffic {
    /// Samples disk `slot` (usually the pool disk).
    pub fn new(slot: &Slot) -> DiskMonitorTraffic {
        DiskMonitorTraffic { slot: slot.clone() }
    }
}

impl fmt::Display for DiskMonitorTraffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/disk monitor-traffic {} once", self.slot)
    }
}

impl Command for DiskMonitorTraffic {
    fn verb(&self) -> &'static str {
        "disk-monitor-traffic"
    }
    fn output(&self) -> Output {
        Output::Colon
    }
    fn subject(&self) -> Subject {
        Subject::Slot(self.slot.clone())
    }
}

/// `/system resource print`: the RouterOS version (read first, to pick text or JSON prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemResourcePrint;

impl fmt::Display for SystemResourcePrint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/system resource print")
    }
}

impl Command for SystemResourcePrint {
    fn verb(&self) -> &'static str {
        "system-resource"
    }
    fn output(&self) -> Output {
        Output::Colon
    }
    fn subject(&self) -> Subject {
        Subject::None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::size::{GRANULARITY, round_up};

    const UUID_SLOT: &str = "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";

    fn slot(s: &str) -> Slot {
        Slot::parse(s).unwrap()
    }

    fn pool() -> PoolPath {
        PoolPath::parse("/storage-pool/metal-csi").unwrap()
    }

    fn export(s: &Slot) -> NvmeExport {
        NvmeExport {
            port: Port::NVME_TCP_DEFAULT,
            nqn: Nqn::for_slot("nqn.2000-02.com.mikrotik", s).unwrap(),
        }
    }

    #[test]
    fn disk_add_line() {
        let s = slot(UUID_SLOT);
        let size = round_up(Bytes::new(3 << 29)).unwrap(); // 1.5 GiB stays 1.5 GiB
        let cmd = DiskAdd::new(&pool(), &s, size, export(&s)).unwrap();
        assert_eq!(
            cmd.to_line(),
            "/disk add type=file file-path=/storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img \
             file-size=1610612736 slot=pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8 nvme-tcp-export=yes \
             nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8"
        );
        assert_eq!(cmd.verb(), "disk-add");
        assert_eq!(cmd.output(), Output::Nothing);
        assert_eq!(cmd.subject(), Subject::Slot(s.clone()));
        let with_comment = cmd.with_comment(
            Comment::new(crate::routeros::names::CommentKind::Volume).with_created(17),
        );
        assert!(
            with_comment
                .to_line()
                .ends_with(" comment=\"rds-csi:v1 kind=volume created=17\""),
            "{with_comment}"
        );
    }

    #[test]
    fn disk_add_refuses_unrounded_or_zero_sizes() {
        let s = slot("vm-storage-001");
        assert!(DiskAdd::new(&pool(), &s, Bytes::new(GRANULARITY.get() + 1), export(&s)).is_err());
        assert!(DiskAdd::new(&pool(), &s, Bytes::ZERO, export(&s)).is_err());
        assert!(DiskResize::new(&s, Bytes::new(1000)).is_err());
    }

    #[test]
    fn disk_copy_lines() {
        let src = slot("pvc-a");
        let snap = slot("snap-b");
        let plain = DiskCopy::new(&src, &pool(), &snap).unwrap();
        assert_eq!(
            plain.to_line(),
            "/disk add type=file copy-from=[find slot=pvc-a] file-path=/storage-pool/metal-csi/snap-b.img slot=snap-b"
        );
        let commented = plain
            .clone()
            .with_comment(Comment::snapshot(src.clone(), 1_739_800_000));
        assert_eq!(
            commented.to_line(),
            "/disk add type=file copy-from=[find slot=pvc-a] file-path=/storage-pool/metal-csi/snap-b.img slot=snap-b \
             comment=\"rds-csi:v1 kind=snapshot source=pvc-a created=1739800000\""
        );
        let clone = slot("pvc-c");
        let exported = DiskCopy::new(&snap, &PoolPath::parse("raid10").unwrap(), &clone)
            .unwrap()
            .exported(export(&clone));
        assert_eq!(
            exported.to_line(),
            "/disk add type=file copy-from=[find slot=snap-b] file-path=/raid10/pvc-c.img slot=pvc-c \
             nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-c"
        );
        assert_eq!(exported.verb(), "disk-copy");
        assert!(DiskCopy::new(&src, &pool(), &src).is_err());
    }

    #[test]
    fn print_lines_in_both_forms() {
        let s = slot("vm-storage-001");
        let prefix = SlotPrefix::parse("pvc-").unwrap();
        let img = ImagePath::new(&PoolPath::parse("raid10").unwrap(), &s);
        let cases: Vec<(Box<dyn Command>, &str, &str)> = vec![
            (
                Box::new(DiskPrint::new(&s)),
                "/disk print detail where slot=vm-storage-001",
                ":put [:serialize to=json [/disk print detail as-value where slot=vm-storage-001]]",
            ),
            (
                Box::new(DiskList::new(&prefix)),
                "/disk print detail where slot~\"^pvc-\"",
                ":put [:serialize to=json [/disk print detail as-value where slot~\"^pvc-\"]]",
            ),
            (
                Box::new(FilePrint::image(&img)),
                "/file print detail where name=\"raid10/vm-storage-001.img\"",
                ":put [:serialize to=json [/file print detail as-value where name=\"raid10/vm-storage-001.img\"]]",
            ),
            (
                Box::new(FilePrint::directory(&pool())),
                "/file print detail where name=\"storage-pool/metal-csi\"",
                ":put [:serialize to=json [/file print detail as-value where name=\"storage-pool/metal-csi\"]]",
            ),
            (
                Box::new(PoolCapacityQuery::by_mount_point(&pool())),
                "/disk print detail where mount-point=\"storage-pool\"",
                ":put [:serialize to=json [/disk print detail as-value where mount-point=\"storage-pool\"]]",
            ),
            (
                Box::new(PoolCapacityQuery::by_file(&pool())),
                "/file print detail where name=\"storage-pool\"",
                ":put [:serialize to=json [/file print detail as-value where name=\"storage-pool\"]]",
            ),
        ];
        for (cmd, text, _) in &cases {
            assert_eq!(cmd.to_line(), *text);
            assert_eq!(cmd.output(), Output::Detail);
        }
        let json: Vec<Box<dyn Command>> = vec![
            Box::new(DiskPrint::new(&s).format(Format::Json)),
            Box::new(DiskList::new(&prefix).format(Format::Json)),
            Box::new(FilePrint::image(&img).format(Format::Json)),
            Box::new(FilePrint::directory(&pool()).format(Format::Json)),
            Box::new(PoolCapacityQuery::by_mount_point(&pool()).format(Format::Json)),
            Box::new(PoolCapacityQuery::by_file(&pool()).format(Format::Json)),
        ];
        for (cmd, (_, _, want)) in json.iter().zip(&cases) {
            assert_eq!(cmd.to_line(), *want);
            assert_eq!(cmd.output(), Output::Json);
        }
    }

    #[test]
    fn mutation_and_monitor_lines() {
        let s = slot(UUID_SLOT);
        let img = ImagePath::new(&pool(), &s);
        assert_eq!(
            DiskResize::new(&s, Bytes::new(10 << 30)).unwrap().to_line(),
            "/disk set [find slot=pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8] file-size=10737418240"
        );
        assert_eq!(
            DiskRemove::new(&s).to_line(),
            "/disk remove [find slot=pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8]"
        );
        assert_eq!(
            FileRemove::new(&img).to_line(),
            "/file remove [find name=\"storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img\"]"
        );
        let pool_slot = slot("storage-pool");
        assert_eq!(
            DiskMonitorTraffic::new(&pool_slot).to_line(),
            "/disk monitor-traffic storage-pool once"
        );
        assert_eq!(SystemResourcePrint.to_line(), "/system resource print");
        assert_eq!(SystemResourcePrint.output(), Output::Colon);
    }

    #[test]
    fn verbs_are_distinct_and_short() {
        let s = slot("a");
        let img = ImagePath::new(&pool(), &s);
        let verbs = [
            DiskAdd::new(&pool(), &s, GRANULARITY, export(&s))
                .unwrap()
                .verb(),
            DiskCopy::new(&slot("b"), &pool(), &s).unwrap().verb(),
            DiskPrint::new(&s).verb(),
            DiskList::new(&SlotPrefix::parse("a").unwrap()).verb(),
            DiskResize::new(&s, GRANULARITY).unwrap().verb(),
            DiskRemove::new(&s).verb(),
            FileRemove::new(&img).verb(),
            FilePrint::image(&img).verb(),
            PoolCapacityQuery::by_file(&pool()).verb(),
            DiskMonitorTraffic::new(&s).verb(),
            SystemResourcePrint.verb(),
        ];
        let mut unique = verbs.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), verbs.len());
        assert!(verbs.iter().all(|v| v.len() <= 24 && !v.contains(' ')));
    }

    #[test]
    fn quoting_escapes_specials() {
        assert_eq!(quoted("a\"b\\c$d"), "\"a\\\"b\\\\c\\$d\"");
        assert_eq!(quoted("plain"), "\"plain\"");
    }
}
