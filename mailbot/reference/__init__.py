"""Reference data the checks look things up in: the daily UNIS extract (`unis`), the branch
directory (`branches`), the business calendar (`calendar`), and the three loaded together for a
poll cycle (`data.ReferenceData`)."""
