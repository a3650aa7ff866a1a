"""Build real sample files at test time (PDF, Office, ODF, RTF, ZIP, PNG, mail).

No binary fixture is committed: every sample is generated here, small and
deterministic, so any test can ask for "a DOCX with this paragraph" or "a zip
bomb" without shipping one. Only the stdlib and pypdf (for encryption and
embedded files) are used.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Sequence
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from xml.sax.saxutils import escape

from pypdf import PdfReader, PdfWriter

__all__ = [
    "make_appledouble",
    "make_docx",
    "make_docx_from_template",
    "make_encrypted_pdf",
    "make_mail",
    "make_nested_zips",
    "make_odp",
    "make_ods",
    "make_odt",
    "make_pdf",
    "make_pdf_form",
    "make_pdf_form_with_scripts",
    "make_pdf_image_only",
    "make_pdf_with_attachment",
    "make_png",
    "make_pptx",
    "make_restricted_pdf_with_objstm",
    "make_rtf",
    "make_url_shortcut",
    "make_xlsx",
    "make_zip",
    "make_zip_bomb",
    "parse_mail",
]

Cell = str | int | float

# --------------------------------------------------------------------------- PDF


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (characters outside cp1252 become '?')."""
    raw = text.encode("cp1252", "replace")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + raw + b")"


def _stream(data: bytes, extra: bytes = b"", *, compress: bool = False) -> bytes:
    if compress:
        data = zlib.compress(data, 6)
        extra += b" /Filter /FlateDecode"
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def _assemble_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """Number the objects from 1, write them, then a correct xref table and trailer."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n" % (
        len(objects) + 1, root, xref)
    out += b"%%EOF\n"
    return bytes(out)


def make_pdf(lines: Sequence[str], *, lines_per_page: int = 50, compress: bool = False) -> bytes:
    """A valid PDF whose text layer holds ``lines`` (Helvetica, WinAnsiEncoding).

    Lines are spread over pages of ``lines_per_page``; ``compress`` puts the
    content streams through FlateDecode like real producers do.
    """
    pages = [list(lines[i:i + lines_per_page]) for i in range(0, len(lines), lines_per_page)]
    if not pages:
        pages = [[]]
    font_obj = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    contents: list[bytes] = []
    for page in pages:
        body = bytearray(b"BT\n/F1 11 Tf\n14 TL\n50 800 Td\n")
        for line in page:
            body += _pdf_string(line) + b" Tj T*\n"
        body += b"ET\n"
        contents.append(_stream(bytes(body), compress=compress))
    # The font is the last object so page numbering stays simple.
    objects_count = 2 + 2 * len(contents)
    font_no = objects_count + 1
    pdf_objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids: list[int] = []
    for content in contents:
        page_no = len(pdf_objects) + 1
        kids.append(page_no)
        pdf_objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                           b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                           % (font_no, page_no + 1))
        pdf_objects.append(content)
    pdf_objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    pdf_objects.append(font_obj)
    return _assemble_pdf(pdf_objects)


def make_pdf_image_only(pages: int = 1) -> bytes:
    """A PDF whose pages only paint an image, like a scanned prescription (no text layer)."""
    image_no = 2 + 2 * pages + 1
    pdf_objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids: list[int] = []
    for _ in range(pages):
        page_no = len(pdf_objects) + 1
        kids.append(page_no)
        pdf_objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                           b"/Resources << /XObject << /Im1 %d 0 R >> >> /Contents %d 0 R >>"
                           % (image_no, page_no + 1))
        pdf_objects.append(_stream(b"q 400 0 0 560 90 140 cm /Im1 Do Q\n"))
    pdf_objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    pixels = bytes(range(0, 256, 16)) * 16  # 16x16 grey gradient
    pdf_objects.append(_stream(pixels, b" /Type /XObject /Subtype /Image /Width 16 /Height 16"
                                       b" /ColorSpace /DeviceGray /BitsPerComponent 8"))
    return _assemble_pdf(pdf_objects)


def make_pdf_form(fields: dict[str, str], lines: Sequence[str] = ("Formulaire",)) -> bytes:
    """A one-page PDF with filled text fields (AcroForm), like a CERFA typed on screen.

    The values live only in the form fields, not in the page's content stream.
    """
    field_nos = list(range(6, 6 + len(fields)))
    body = bytearray(b"BT\n/F1 11 Tf\n14 TL\n50 800 Td\n")
    for line in lines:
        body += _pdf_string(line) + b" Tj T*\n"
    body += b"ET\n"
    refs = b" ".join(b"%d 0 R" % n for n in field_nos)
    pdf_objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [%s] >> >>" % refs,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R"
        b" >> >> /Contents 4 0 R /Annots [%s] >>" % refs,
        _stream(bytes(body)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, (name, value) in enumerate(fields.items()):
        y = 700 - 30 * index
        pdf_objects.append(b"<< /Type /Annot /Subtype /Widget /FT /Tx /T %s /V %s /P 3 0 R "
                           b"/Rect [50 %d 300 %d] >>"
                           % (_pdf_string(name), _pdf_string(value), y, y + 20))
    return _assemble_pdf(pdf_objects)


# Acrobat's own helpers, what every Cerfa form's fields call to format amounts and dates.
FIELD_SCRIPTS = {
    "K": 'AFNumber_Keystroke(2, 0, 0, 0, "\\u20ac", true);',
    "F": 'AFNumber_Format(2, 0, 0, 0, "\\u20ac", true);',
    "V": "if (event.value < 0) app.alert(\"Montant positif attendu\");",
    "C": 'AFSimple_Calculate("SUM", new Array ("seance1", "seance2"));',
}


def make_pdf_form_with_scripts(triggers: Sequence[str] = ("K", "F", "V", "C"), *,
                               compress: bool = False,
                               open_action: bytes | None = None) -> bytes:
    """A Cerfa-like form: text fields whose /AA run Acrobat's formatting scripts when
    the user types (K), leaves (F, V) or another field changes (C). ``compress`` puts
    the scripts in FlateDecode streams as Acrobat does; ``open_action`` adds a
    catalog /OpenAction (b"[3 0 R /Fit]" is an ordinary "fit the page" zoom)."""
    actions: list[bytes] = []
    first_action = 7
    for trigger in triggers:
        script = FIELD_SCRIPTS[trigger].encode()
        if compress:
            actions.append(_stream(script, compress=True))
        else:
            actions.append(b"<< /S /JavaScript /JS %s >>" % _pdf_string(script.decode()))
    if compress:  # the action dictionaries point at the script streams
        script_objs = actions
        actions = [b"<< /S /JavaScript /JS %d 0 R >>" % (first_action + len(triggers) + i)
                   for i in range(len(triggers))]
        actions += script_objs
    aa = b" ".join(b"/%s %d 0 R" % (t.encode(), first_action + i)
                   for i, t in enumerate(triggers))
    catalog = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [6 0 R] >>%s >>" % (
        b" /OpenAction " + open_action if open_action else b"")
    pdf_objects: list[bytes] = [
        catalog,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R"
        b" >> >> /Contents 4 0 R /Annots [6 0 R] >>",
        _stream(b"BT /F1 11 Tf 50 800 Td (Demande de prise en charge) Tj ET\n"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (montant) /P 3 0 R "
        b"/Rect [50 700 300 720] /AA << %s >> >>" % aa,
        *actions,
    ]
    return _assemble_pdf(pdf_objects)


def make_encrypted_pdf(lines: Sequence[str] = ("Compte rendu confidentiel",), *,
                       user_password: str = "secret", owner_password: str = "owner",
                       algorithm: str = "AES-128") -> bytes:
    """``make_pdf(lines)`` encrypted by pypdf; ``user_password=""`` opens without a password."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(lines))))
    writer.encrypt(user_password, owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_pdf_with_attachment(lines: Sequence[str], name: str, data: bytes) -> bytes:
    """``make_pdf(lines)`` carrying an embedded file (PDF "attachments" panel)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(lines))))
    writer.add_attachment(name, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --------------------------------------------------------------------------- ZIP family


def _zip(parts: Sequence[tuple[str, bytes]], *, stored_first: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for index, (name, data) in enumerate(parts):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


def _set_encrypted_flags(data: bytes) -> bytes:
    """Set general-purpose bit 0 (encrypted) in every local and central header.

    The stdlib cannot write ZipCrypto, but readers decide "encrypted" from this
    bit alone, so a forged flag is what a password-protected archive looks like
    to a scanner that has no password.
    """
    out = bytearray(data)
    eocd = out.rfind(b"PK\x05\x06")
    assert eocd >= 0, "not a zip"
    (entries,) = struct.unpack_from("<H", out, eocd + 10)
    (cd_offset,) = struct.unpack_from("<I", out, eocd + 16)
    pos = cd_offset
    for _ in range(entries):
        assert out[pos:pos + 4] == b"PK\x01\x02"
        (flags,) = struct.unpack_from("<H", out, pos + 8)
        struct.pack_into("<H", out, pos + 8, flags | 0x1)
        (local,) = struct.unpack_from("<I", out, pos + 42)
        assert out[local:local + 4] == b"PK\x03\x04"
        (lflags,) = struct.unpack_from("<H", out, local + 6)
        struct.pack_into("<H", out, local + 6, lflags | 0x1)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", out, pos + 28)
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


def make_zip(members: dict[str, bytes], password: bool = False) -> bytes:
    """A deflated zip; ``password=True`` forges the "encrypted" flag on every member."""
    data = _zip(list(members.items()))
    return _set_encrypted_flags(data) if password else data


def make_zip_bomb(size: int = 300 * 1024 * 1024, name: str = "zeros.bin") -> bytes:
    """A zip whose single member expands to ``size`` zero bytes (~0.1 % of that on disk).

    Written through ``ZipFile.open(..., "w")`` in 1 MiB steps, so building it
    never holds the expanded data in memory.
    """
    buf = io.BytesIO()
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as member:
            left = size
            while left > 0:
                step = min(left, len(chunk))
                member.write(chunk[:step])
                left -= step
    return buf.getvalue()


def make_nested_zips(levels: int, inner_name: str = "note.txt",
                     inner: bytes = b"au fond") -> bytes:
    """``levels`` zips nested in each other, a text file at the bottom."""
    data = make_zip({inner_name: inner})
    for level in range(levels - 1, 0, -1):
        data = make_zip({f"level{level + 1}.zip": data})
    return data


_CT_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            b'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>')
_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
         'relationships/officeDocument" Target="{target}"/></Relationships>')
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_X = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _content_types(overrides: Sequence[tuple[str, str]]) -> bytes:
    body = b"".join(b'<Override PartName="%s" ContentType="%s"/>'
                    % (part.encode(), ctype.encode()) for part, ctype in overrides)
    return _CT_HEAD + body + b"</Types>"


def _w_paragraphs(paragraphs: Sequence[str]) -> str:
    return "".join(f'<w:p><w:r><w:t xml:space="preserve">{escape(p)}</w:t></w:r></w:p>'
                   for p in paragraphs)


def make_docx(paragraphs: Sequence[str], *, header: str | None = None,
              document_xml: bytes | None = None) -> bytes:
    """A minimal Word document; ``document_xml`` replaces word/document.xml verbatim."""
    body = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<w:document xmlns:w="{_W}"><w:body>{_w_paragraphs(paragraphs)}'
            f"</w:body></w:document>").encode()
    wml = "application/vnd.openxmlformats-officedocument.wordprocessingml"
    overrides = [("/word/document.xml", f"{wml}.document.main+xml")]
    parts: list[tuple[str, bytes]] = []
    if header is not None:
        overrides.append(("/word/header1.xml", f"{wml}.header+xml"))
        parts.append(("word/header1.xml",
                      (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                       f'<w:hdr xmlns:w="{_W}">{_w_paragraphs([header])}</w:hdr>').encode()))
    return _zip([("[Content_Types].xml", _content_types(overrides)),
                 ("_rels/.rels", _RELS.format(target="word/document.xml").encode()),
                 ("word/document.xml", document_xml if document_xml is not None else body),
                 *parts])


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(65 + rem) + name
    return name


def make_xlsx(cells: Sequence[Sequence[Cell]], *, inline_strings: bool = False) -> bytes:
    """A one-sheet workbook. Strings go to sharedStrings.xml (or inline), numbers to <v>."""
    shared: list[str] = []
    rows: list[str] = []
    for r, row in enumerate(cells, start=1):
        out: list[str] = []
        for c, value in enumerate(row):
            ref = f"{_column(c)}{r}"
            if isinstance(value, str):
                if inline_strings:
                    out.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
                else:
                    shared.append(value)
                    out.append(f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>')
            else:
                out.append(f'<c r="{ref}"><v>{value!r}</v></c>')
        rows.append(f'<row r="{r}">{"".join(out)}</row>')
    sheet = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
             f'<worksheet xmlns="{_X}"><sheetData>{"".join(rows)}</sheetData></worksheet>')
    sst = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           f'<sst xmlns="{_X}" count="{len(shared)}" uniqueCount="{len(shared)}">'
           + "".join(f"<si><t>{escape(s)}</t></si>" for s in shared) + "</sst>")
    workbook = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                f'<workbook xmlns="{_X}" xmlns:r="http://schemas.openxmlformats.org/'
                f'officeDocument/2006/relationships"><sheets><sheet name="Feuil1" sheetId="1" '
                f'r:id="rId1"/></sheets></workbook>')
    sml = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    return _zip([
        ("[Content_Types].xml", _content_types([
            ("/xl/workbook.xml", f"{sml}.sheet.main+xml"),
            ("/xl/worksheets/sheet1.xml", f"{sml}.worksheet+xml"),
            ("/xl/sharedStrings.xml", f"{sml}.sharedStrings+xml")])),
        ("_rels/.rels", _RELS.format(target="xl/workbook.xml").encode()),
        ("xl/workbook.xml", workbook.encode()),
        ("xl/worksheets/sheet1.xml", sheet.encode()),
        ("xl/sharedStrings.xml", sst.encode()),
    ])


def make_pptx(texts: Sequence[str]) -> bytes:
    """A presentation with one slide per text (a single text box each)."""
    pml = "application/vnd.openxmlformats-officedocument.presentationml"
    parts: list[tuple[str, bytes]] = []
    overrides = [("/ppt/presentation.xml", f"{pml}.presentation.main+xml")]
    for number, text in enumerate(texts, start=1):
        overrides.append((f"/ppt/slides/slide{number}.xml", f"{pml}.slide+xml"))
        parts.append((f"ppt/slides/slide{number}.xml", (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<p:sld xmlns:a="{_A}" xmlns:p="{_P}"><p:cSld><p:spTree><p:sp><p:txBody>'
            f"<a:bodyPr/><a:p><a:r><a:t>{escape(text)}</a:t></a:r></a:p>"
            f"</p:txBody></p:sp></p:spTree></p:cSld></p:sld>").encode()))
    presentation = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    f'<p:presentation xmlns:p="{_P}"/>').encode()
    return _zip([("[Content_Types].xml", _content_types(overrides)),
                 ("_rels/.rels", _RELS.format(target="ppt/presentation.xml").encode()),
                 ("ppt/presentation.xml", presentation), *parts])


_ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
           'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"')


def _odf(kind: str, body: str, *, encrypted: bool = False) -> bytes:
    mimetype = f"application/vnd.oasis.opendocument.{kind}"
    content = (f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {_ODF_NS} '
               f'office:version="1.3"><office:body>{body}</office:body>'
               f"</office:document-content>").encode()
    encryption = ""
    if encrypted:
        # What LibreOffice writes for a password-protected file: the entry carries
        # <manifest:encryption-data> and content.xml is ciphertext (here: scrambled).
        encryption = ('<manifest:encryption-data manifest:checksum-type="SHA1/1K" '
                      'manifest:checksum="AAAA"><manifest:algorithm manifest:algorithm-name='
                      '"Blowfish CFB" manifest:initialisation-vector="AAAA"/>'
                      "</manifest:encryption-data>")
        content = bytes((b * 7 + 3) % 256 for b in content)
    manifest = ('<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest xmlns:manifest='
                '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
                f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
                '<manifest:file-entry manifest:full-path="content.xml" '
                f'manifest:media-type="text/xml">{encryption}</manifest:file-entry>'
                "</manifest:manifest>")
    return _zip([("mimetype", mimetype.encode()), ("content.xml", content),
                 ("META-INF/manifest.xml", manifest.encode())], stored_first=True)


def make_docx_from_template(template: str, paragraphs: Sequence[str] = ("Cher confrère,",)
                            ) -> bytes:
    """A letter made in Word from a template: word/settings.xml names the template
    through an external attachedTemplate relationship, as Word writes it (for a
    template of the practice: file:///C:/Users/…/Templates/Courrier.dotm)."""
    doc = make_docx(paragraphs)
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns='
            '"http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
            'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            f'relationships/attachedTemplate" Target="{escape(template)}" '
            'TargetMode="External"/></Relationships>').encode()
    settings = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:settings '
                f'xmlns:w="{_W}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
                '2006/relationships"><w:attachedTemplate r:id="rId1"/></w:settings>').encode()
    buf = io.BytesIO(doc)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/settings.xml", settings)
        zf.writestr("word/_rels/settings.xml.rels", rels)
    return buf.getvalue()


def make_odt(paragraphs: Sequence[str], *, encrypted: bool = False) -> bytes:
    """An OpenDocument text (LibreOffice Writer) file; ``encrypted`` as if password-protected."""
    body = "".join(f"<text:p>{escape(p)}</text:p>" for p in paragraphs)
    return _odf("text", f"<office:text>{body}</office:text>", encrypted=encrypted)


def make_ods(cells: Sequence[Sequence[Cell]]) -> bytes:
    """An OpenDocument spreadsheet (LibreOffice Calc) with one table."""
    rows = []
    for row in cells:
        out = []
        for value in row:
            if isinstance(value, str):
                out.append(f'<table:table-cell office:value-type="string">'
                           f"<text:p>{escape(value)}</text:p></table:table-cell>")
            else:
                out.append(f'<table:table-cell office:value-type="float" '
                           f'office:value="{value!r}"><text:p>{value!r}</text:p>'
                           f"</table:table-cell>")
        rows.append(f"<table:table-row>{''.join(out)}</table:table-row>")
    table = f'<table:table table:name="Feuille1">{"".join(rows)}</table:table>'
    return _odf("spreadsheet", f"<office:spreadsheet>{table}</office:spreadsheet>")


def make_odp(texts: Sequence[str]) -> bytes:
    """An OpenDocument presentation (LibreOffice Impress), one page per text."""
    pages = "".join(f'<draw:page draw:name="p{i}"><draw:frame><draw:text-box>'
                    f"<text:p>{escape(t)}</text:p></draw:text-box></draw:frame></draw:page>"
                    for i, t in enumerate(texts, start=1))
    return _odf("presentation", f"<office:presentation>{pages}</office:presentation>")


# --------------------------------------------------------------------------- other formats


def make_rtf(text: str) -> bytes:
    """An RTF document; non-ASCII characters are written as \\uN? escapes."""
    out: list[str] = []
    for ch in text:
        if ch in "\\{}":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\par\n")
        elif ord(ch) < 128:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\u{code if code < 32768 else code - 65536}?")
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times New Roman;}}\n"
            "\\f0\\fs24 " + "".join(out) + "\\par\n}").encode("ascii")


def make_png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid greyscale PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + bytes([(x * 40) % 256 for x in range(width)]) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- USB key debris


def make_appledouble(name: str = "radio.jpg") -> bytes:
    """The "._radio.jpg" macOS writes beside a file copied to a FAT USB key: an
    AppleDouble header with a Finder-info entry and a resource-fork entry."""
    finder = b"JPEG8BIM" + bytes(24)
    header = struct.pack(">IIHH", 0x00051607, 0x00020000, 0, 0)[:8] + b"Mac OS X        "
    entries = [(9, finder), (2, b"\0" * 286)]
    offset = len(header) + 2 + 12 * len(entries)
    table = b""
    body = b""
    for entry_id, data in entries:
        table += struct.pack(">III", entry_id, offset + len(body), len(data))
        body += data
    del name  # the name lives only in the file's own name ("._" + name)
    return header + struct.pack(">H", len(entries)) + table + body


def make_url_shortcut(url: str, *, icon: str | None = None) -> bytes:
    """A Windows Internet shortcut (.url), as Edge or Firefox saves it."""
    lines = ["[{000214A0-0000-0000-C000-000000000046}]", "Prop3=19,11", "[InternetShortcut]",
             "IDList=", f"URL={url}"]
    if icon is not None:
        lines += [f"IconFile={icon}", "IconIndex=0"]
    return ("\r\n".join(lines) + "\r\n").encode()


# --------------------------------------------------------------------------- mail

Attachment = tuple[str, bytes, str]  # (filename, data, "maintype/subtype")


def make_mail(*, subject: str = "Bilan de kinésithérapie",
              text: str | None = "Bonjour,\nveuillez trouver le bilan.\n",
              text_charset: str = "utf-8", text_cte: str | None = None,
              html: str | None = None,
              attachments: Sequence[Attachment] = (),
              attached_message: EmailMessage | None = None,
              attached_message_name: str | None = None,
              sender: str = "cabinet@kine-exemple.fr",
              to: str = "patient@exemple.org") -> EmailMessage:
    """A realistic multipart message.

    ``text_charset="iso-8859-1", text_cte="quoted-printable"`` gives a Latin-1
    QP part; attachments are base64 with RFC 2231 names when non-ASCII;
    ``attached_message`` is attached as message/rfc822 (named
    ``attached_message_name`` when given, as Outlook does with "Tr: ....eml").
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if text is not None:
        msg.set_content(text, charset=text_charset, cte=text_cte)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    for filename, data, ctype in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    if attached_message is not None:
        msg.add_attachment(attached_message)
        if attached_message_name is not None:
            part = list(msg.iter_attachments())[-1]
            part.set_param("filename", attached_message_name, header="Content-Disposition")
    return msg


def parse_mail(raw: bytes) -> EmailMessage:
    """Parse bytes the way the gateway does (``policy.default``)."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --------------------------------------------------------------------------- restricted PDF

_PDF_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def make_restricted_pdf_with_objstm(catalog_extra: bytes = b"") -> bytes:
    """A PDF as Acrobat saves a "secured" statement: no password to open (RC4, empty
    user password, printing and copying restricted), its objects compressed in an
    object stream and located by a cross-reference stream (PDF 1.5)."""
    import hashlib
    permissions = struct.pack("<i", -3904)
    file_id = b"vigie-test-id-01"
    owner = _rc4(hashlib.md5(_PDF_PAD).digest()[:5], _PDF_PAD)
    key = hashlib.md5(_PDF_PAD + owner + permissions + file_id).digest()[:5]
    objs = [b"<< /Type /Catalog /Pages 2 0 R %s >>" % catalog_extra,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
    offsets, body = [], b""
    for obj in objs:
        offsets.append(len(body))
        body += obj + b"\n"
    header = b" ".join(b"%d %d" % (n, off) for n, off in zip((1, 2, 3), offsets, strict=True))
    header += b"\n"
    plain = zlib.compress(header + body)
    objkey = hashlib.md5(key + struct.pack("<I", 4)[:3] + b"\0\0").digest()[:10]
    encrypted = _rc4(objkey, plain)
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    positions = {}
    positions[4] = len(out)
    out += (b"4 0 obj\n<< /Type /ObjStm /N 3 /First %d /Filter /FlateDecode /Length %d >>\n"
            b"stream\n" % (len(header), len(encrypted)) + encrypted + b"\nendstream\nendobj\n")
    positions[5] = len(out)
    out += (b"5 0 obj\n<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>\nendobj\n"
            % (owner.hex().encode(), _rc4(key, _PDF_PAD).hex().encode(),
               struct.unpack("<i", permissions)[0]))
    positions[6] = len(out)
    rows = b"\x00" + bytes(4) + b"\xff\xff"
    rows += b"".join(b"\x02" + struct.pack(">I", 4) + struct.pack(">H", i) for i in range(3))
    rows += b"".join(b"\x01" + struct.pack(">I", positions[n]) + b"\0\0" for n in (4, 5, 6))
    xref = zlib.compress(rows)
    out += (b"6 0 obj\n<< /Type /XRef /Size 7 /W [1 4 2] /Root 1 0 R /Encrypt 5 0 R "
            b"/ID [<%s> <%s>] /Filter /FlateDecode /Length %d >>\nstream\n"
            % (file_id.hex().encode(), file_id.hex().encode(), len(xref)) + xref
            + b"\nendstream\nendobj\n")
    out += b"startxref\n%d\n%%%%EOF\n" % positions[6]
    return bytes(out)
