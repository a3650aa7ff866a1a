"""Attachment and file scanning: true type, archives, macros, PDF active content, YARA."""
