"""The PDF forms a branch attaches: unlock, read every shape of form, survive hostile files.

    sandbox.py   a child process per PDF with wall-clock, memory, size and page limits
    pdf.py       unlock with pikepdf; AcroForm fields; words and cells with pdfplumber
    application.py / termination.py   words → the form's fields (labels in rules/forms/*.toml)
    generate.py  realistic sample forms (several layouts and producers, encrypted or not)
"""
