"""`mmv demo`: a small world in which MMV can be watched learning, on a laptop CPU, in minutes.

``dataset`` builds narrated videos of moving handwritten digits whose sound track speaks the digit (``render``
draws and encodes them, ``narration`` writes what a narrator says, ``speech`` is eSpeak NG text to speech);
``report`` turns a run's numbers into an HTML page with plots. Nothing is imported here, so ``import mmv`` stays
light: matplotlib, mlxtend and eSpeak NG load only when a demo function needs them.
"""
