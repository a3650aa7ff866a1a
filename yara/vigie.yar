/*
  vigie's own YARA rules (written for the project, AGPL-3.0-or-later like the rest).

  Every rule says in its meta what a match means:
    verdict = "malicious" | "suspicious"   (default: malicious)
    fr / en = the explanation shown to people, French and English.
  Local rules (the [scan] yara_dir folder) may do the same.
*/

rule vigie_eicar_test_file
{
    meta:
        verdict = "malicious"
        fr = "fichier de test antivirus EICAR"
        en = "EICAR antivirus test file"
    strings:
        // the test string in two halves, so that this file is not itself a test file
        $head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
        $tail = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $head at 0 and $tail at 28 and filesize < 256
}

rule vigie_windows_program
{
    meta:
        verdict = "malicious"
        fr = "programme Windows (en-tête MZ/PE)"
        en = "Windows program (MZ/PE header)"
    condition:
        uint16(0) == 0x5A4D and uint32(0x3C) < filesize - 4 and
        uint32(uint32(0x3C)) == 0x00004550
}

rule vigie_windows_program_inside
{
    meta:
        verdict = "malicious"
        fr = "programme Windows caché dans un autre fichier"
        en = "Windows program hidden inside another file"
    strings:
        $dos = "This program cannot be run in DOS mode"
        $dos2 = "This program must be run under Win32"
    condition:
        uint16(0) != 0x5A4D and any of them
}

rule vigie_linux_program
{
    meta:
        verdict = "malicious"
        fr = "programme Linux (en-tête ELF)"
        en = "Linux program (ELF header)"
    condition:
        uint32(0) == 0x464C457F and (uint8(4) == 1 or uint8(4) == 2)
}

rule vigie_mac_program
{
    meta:
        verdict = "malicious"
        fr = "programme macOS (en-tête Mach-O)"
        en = "macOS program (Mach-O header)"
    condition:
        uint32(0) == 0xFEEDFACE or uint32(0) == 0xFEEDFACF or
        uint32(0) == 0xCEFAEDFE or uint32(0) == 0xCFFAEDFE or
        (uint32(0) == 0xBEBAFECA and uint32be(4) > 0 and uint32be(4) < 20 and
         uint32be(8) > 0 and uint32be(8) < 0x02000000 and uint32be(8) != 0x0000002D)
}

rule vigie_windows_shortcut_command
{
    meta:
        verdict = "malicious"
        fr = "raccourci Windows qui lance une commande"
        en = "Windows shortcut that runs a command"
    strings:
        $cmd = "cmd.exe" nocase ascii wide
        $cmd2 = "cmd /c" nocase ascii wide
        $ps = "powershell" nocase ascii wide
        $mshta = "mshta" nocase ascii wide
        $wscript = "wscript" nocase ascii wide
        $rundll = "rundll32" nocase ascii wide
    condition:
        uint32(0) == 0x0000004C and uint32(4) == 0x00021401 and any of them
}

rule vigie_powershell_download
{
    meta:
        verdict = "malicious"
        fr = "script qui télécharge et lance un programme (PowerShell)"
        en = "script that downloads and runs a program (PowerShell)"
    strings:
        $dl1 = "DownloadString" nocase ascii wide
        $dl2 = "DownloadFile" nocase ascii wide
        $dl3 = "Invoke-WebRequest" nocase ascii wide
        $dl4 = "Net.WebClient" nocase ascii wide
        $dl5 = "Start-BitsTransfer" nocase ascii wide
        $dl6 = "DownloadData" nocase ascii wide
        $ex1 = "IEX" ascii wide
        $ex2 = "Invoke-Expression" nocase ascii wide
        $ex3 = "Start-Process" nocase ascii wide
        $ex4 = "FromBase64String" nocase ascii wide
        $ex5 = /-e(nc|ncodedcommand)?\s+[A-Za-z0-9+\/]{40}/ nocase ascii wide
    condition:
        filesize < 20MB and any of ($dl*) and any of ($ex*)
}

rule vigie_windows_script_dropper
{
    meta:
        verdict = "malicious"
        fr = "script Windows qui lance des commandes (WScript.Shell)"
        en = "Windows script that runs commands (WScript.Shell)"
    strings:
        $shell = "WScript.Shell" nocase ascii wide
        $ax = "ActiveXObject" nocase ascii wide
        $co = "CreateObject" nocase ascii wide
        $run = ".Run" nocase ascii wide
        $exec = ".Exec" nocase ascii wide
        $http = "MSXML2.XMLHTTP" nocase ascii wide
        $stream = "ADODB.Stream" nocase ascii wide
    condition:
        filesize < 20MB and $shell and ($ax or $co) and ($run or $exec or $http or $stream)
}

rule vigie_lolbin_download
{
    meta:
        verdict = "malicious"
        fr = "commande Windows détournée pour télécharger (mshta, certutil, regsvr32…)"
        en = "Windows command abused to download (mshta, certutil, regsvr32…)"
    strings:
        $a = /(mshta|certutil|regsvr32|rundll32|bitsadmin|msiexec)(\.exe)?[^\r\n]{0,120}https?:\/\// nocase ascii wide
    condition:
        filesize < 20MB and $a
}

rule vigie_html_smuggling
{
    meta:
        verdict = "malicious"
        fr = "page qui fabrique un fichier à télécharger (« HTML smuggling »)"
        en = "page that builds a file to download (HTML smuggling)"
    strings:
        $save = "msSaveOrOpenBlob" ascii wide
        $blob = /new\s+Blob\s*\(/ ascii wide
        $url = "createObjectURL" ascii wide
        $dl1 = ".download" ascii wide
        $dl2 = /["']download["']/ ascii wide
        $dl3 = "setAttribute(\"download\"" ascii wide
    condition:
        filesize < 20MB and ($save or ($blob and $url and any of ($dl*)))
}
