"""Deterministic generator of synthetic IT service-desk tickets (Spanish / English).

Used for demos, tests and smoke-training when no real tickets are at hand. Everything is
built from the template tables below; nothing is read from disk and no dataset is copied.

    >>> from shared.demodata import generate
    >>> tickets = generate(3, seed=7)
    >>> tickets == generate(3, seed=7)
    True

Each ticket gets its own ``random.Random(f"{seed}:{start + i}")``, so a ticket only depends
on its seed and absolute position: ``generate(20)[10:] == generate(10, start=10)``.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["CAUSES", "DemoTicket", "generate"]

# The ticket table with causa's default names, as the demo, the benchmarks and the tests
# create it (a real deployment brings its own table).
TABLE_SQL = """
CREATE TABLE IF NOT EXISTS tickets (
    number text PRIMARY KEY,
    short_description text,
    description text,
    causa text
);
"""

CAUSES: tuple[str, ...] = (
    "Accesos",
    "Hardware",
    "Red",
    "Software",
    "Correo",
    "Impresoras",
    "Base de datos",
)

# --------------------------------------------------------------------------------------
# Tunables
# --------------------------------------------------------------------------------------

SPANISH_SHARE = 0.70  # share of tickets written (mainly) in Spanish
MIXED_SHARE = 0.12  # tickets mixing both languages (other-language subject or greeting)
AMBIGUOUS_SHARE = 0.08  # tickets whose text mentions two causes
VAGUE_SHARE = 0.04  # under-specified tickets ("SAP no funciona")
TYPO_SHARE = 0.10  # tickets carrying one typo
URGENT_PREFIX_SHARE = 0.07

# Relative frequency of each cause (access and software requests dominate real desks).
CAUSE_WEIGHTS: dict[str, float] = {
    "Accesos": 0.21,
    "Hardware": 0.15,
    "Red": 0.14,
    "Software": 0.18,
    "Correo": 0.13,
    "Impresoras": 0.10,
    "Base de datos": 0.09,
}

# --------------------------------------------------------------------------------------
# Templates: (es_short, es_body, en_short, en_body). Bodies are exactly one sentence.
# Slots: {app} {sw} {device} {printer} {db} {dbname} {dept} {loc} {since} {city}
# --------------------------------------------------------------------------------------

Template = tuple[str, str, str, str]

TEMPLATES: dict[str, tuple[Template, ...]] = {
    "Accesos": (
        (
            "No puedo iniciar sesión en {app}",
            "Al intentar iniciar sesión en {app} me dice que la contraseña es incorrecta {since}.",
            "Cannot log in to {app}",
            "When I try to log in to {app} it says my password is incorrect {since}.",
        ),
        (
            "Cuenta bloqueada en {app}",
            "Mi cuenta de {app} aparece bloqueada después de varios intentos fallidos.",
            "Account locked out in {app}",
            "My {app} account got locked after a few failed login attempts.",
        ),
        (
            "Mi contraseña ha caducado",
            "Me aparece un aviso de contraseña caducada y no me deja cambiarla.",
            "My password has expired",
            "I get a password expired prompt and it will not let me set a new one.",
        ),
        (
            "Solicito acceso a la carpeta compartida",
            "Necesito permisos de lectura y escritura en la carpeta compartida de {dept}.",
            "Need access to shared folder",
            "I need read and write permissions on the {dept} shared folder.",
        ),
        (
            "Alta de usuario nuevo en {app}",
            "Se incorpora una persona nueva a {dept} el lunes y necesita usuario en {app}.",
            "New user account for {app}",
            "A new hire joins {dept} on Monday and needs a user account in {app}.",
        ),
        (
            "No me llega el código MFA",
            "No recibo el código de verificación MFA en el móvil y no puedo acceder a {app}.",
            "MFA code not arriving",
            "I am not receiving the MFA verification code on my phone so I cannot access {app}.",
        ),
        (
            "Permisos insuficientes en {app}",
            "Al abrir {app} me sale el mensaje de permisos insuficientes para esta transacción.",
            "Insufficient permissions in {app}",
            "{app} shows an insufficient permissions error when I open this screen.",
        ),
        (
            "Restablecer contraseña de dominio",
            "He olvidado la contraseña de Windows y necesito que me la restablezcan.",
            "Reset my domain password",
            "I forgot my Windows password and need it reset.",
        ),
        (
            "Acceso denegado a SharePoint",
            "Al entrar en el sitio de SharePoint de {dept} aparece acceso denegado.",
            "Access denied on SharePoint site",
            "I get access denied when opening the {dept} SharePoint site.",
        ),
        (
            "Baja de usuario en todos los sistemas",
            "Un compañero de {dept} deja la empresa el viernes y hay que desactivar su cuenta.",
            "Disable accounts for leaver",
            "A colleague from {dept} leaves on Friday, please disable their account and access.",
        ),
        (
            "Me falta un rol en {app}",
            "Me han cambiado de puesto y ya no tengo el rol que necesito en {app}.",
            "Missing role in {app}",
            "I changed roles and no longer have the permissions I need in {app}.",
        ),
        (
            "Error de autenticación en {app}",
            "{app} rechaza mis credenciales aunque la contraseña es la correcta.",
            "Authentication failed on {app}",
            "{app} rejects my credentials even though the password is right.",
        ),
        (
            "Desbloqueo de cuenta de dominio",
            "Se me ha bloqueado la cuenta de dominio y no puedo iniciar sesión en el equipo.",
            "Unlock my domain account",
            "My domain account is locked and I cannot sign in to my computer.",
        ),
        (
            "Añadir usuario al grupo de {dept}",
            "Necesito que me añadan al grupo de seguridad de {dept} para ver los informes.",
            "Please add me to security group",
            "Please add me to the {dept} security group so I can see the reports.",
        ),
        (
            "Petición de permisos de administrador",
            "Necesito permisos de administrador local para instalar una herramienta aprobada.",
            "Local admin rights request",
            "I need local admin rights to install an approved tool.",
        ),
        (
            "Cambio de contraseña no sincroniza",
            "Cambié la contraseña ayer y {app} sigue pidiendo la antigua.",
            "Password change not syncing",
            "I changed my password yesterday and {app} still asks for the old one.",
        ),
        (
            "No puedo usar {app}",
            "No consigo usar {app} con mi usuario {since}.",
            "Cannot use {app}",
            "I cannot use {app} with my user {since}.",
        ),
    ),
    "Hardware": (
        (
            "{device} no enciende",
            "{device} no enciende aunque está enchufado {since}.",
            "{device} will not turn on",
            "{device} will not turn on even though it is plugged in {since}.",
        ),
        (
            "Pantalla azul al arrancar",
            "El equipo muestra una pantalla azul al arrancar y se reinicia solo.",
            "Blue screen on startup",
            "The computer shows a blue screen on boot and restarts by itself.",
        ),
        (
            "El portátil se calienta mucho",
            "El portátil hace un ruido raro y se calienta mucho {loc}.",
            "Laptop overheating and noisy",
            "My laptop gets very hot and the fan is really loud {loc}.",
        ),
        (
            "El monitor parpadea",
            "El monitor externo parpadea y a veces se queda en negro.",
            "External monitor flickering",
            "The external monitor keeps flickering and sometimes goes black.",
        ),
        (
            "Teclas del teclado no responden",
            "Varias teclas del teclado no responden, sobre todo la barra espaciadora.",
            "Keyboard keys not working",
            "Several keys on my keyboard stopped responding, mostly the space bar.",
        ),
        (
            "La batería del portátil no carga",
            "La batería del portátil no carga más del 40% y se apaga sin avisar.",
            "Laptop battery not charging",
            "The laptop battery does not charge past 40% and shuts down suddenly.",
        ),
        (
            "Solicitud de ratón nuevo",
            "El ratón se ha roto y necesito uno nuevo para el puesto {loc}.",
            "Broken mouse, need replacement",
            "My mouse is broken and I need a replacement for my desk {loc}.",
        ),
        (
            "Docking station no detecta pantallas",
            "Al conectar el portátil a la docking station no detecta las pantallas.",
            "Docking station not detecting screens",
            "When I plug the laptop into the docking station the screens are not detected.",
        ),
        (
            "Disco duro con errores de lectura",
            "El disco duro da errores de lectura y hace un ruido de clic.",
            "Hard drive making clicking noise",
            "The hard drive makes a clicking noise and shows read errors.",
        ),
        (
            "La webcam no funciona",
            "La cámara del portátil no funciona en ninguna aplicación.",
            "Webcam not working",
            "The laptop camera does not work in any application.",
        ),
        (
            "Pantalla del portátil rota",
            "Se me ha caído el portátil y la pantalla está rota.",
            "Cracked laptop screen",
            "I dropped my laptop and the screen is cracked.",
        ),
        (
            "El ordenador tarda mucho en arrancar",
            "El ordenador tarda más de diez minutos en arrancar y el ventilador no para.",
            "PC takes ages to boot",
            "My desktop takes over ten minutes to boot and the fan never stops.",
        ),
        (
            "El cargador del portátil no funciona",
            "El cargador del portátil no funciona y la luz no se enciende.",
            "Laptop charger not working",
            "The laptop charger is dead and the light does not come on.",
        ),
        (
            "Solicitud de segundo monitor",
            "Necesito un segundo monitor para el puesto {loc}.",
            "Request for a second monitor",
            "I need a second monitor for my desk {loc}.",
        ),
        (
            "Puertos USB no reconocen dispositivos",
            "Los puertos USB no reconocen ningún dispositivo {since}.",
            "USB ports not recognizing devices",
            "The USB ports do not recognize any device {since}.",
        ),
        (
            "Auriculares sin sonido",
            "Los auriculares no dan sonido aunque el equipo los detecta.",
            "Headset has no sound",
            "My headset gives no sound although the computer detects it.",
        ),
        (
            "Problema con mi equipo",
            "Mi equipo falla {since} y no sé qué le pasa.",
            "Problem with my computer",
            "My computer is acting up {since} and I do not know why.",
        ),
    ),
    "Red": (
        (
            "Sin conexión a internet {loc}",
            "No hay conexión a internet {loc} {since}.",
            "No internet connection {loc}",
            "There is no internet connection {loc} {since}.",
        ),
        (
            "La VPN se desconecta",
            "La VPN se desconecta cada pocos minutos cuando trabajo desde casa.",
            "VPN keeps disconnecting",
            "The VPN drops every few minutes when I work from home.",
        ),
        (
            "No conecta a la VPN",
            "Al conectar a la VPN da error de tiempo de espera agotado.",
            "Cannot connect to VPN",
            "Connecting to the VPN fails with a timeout error.",
        ),
        (
            "Wifi muy lento {loc}",
            "El wifi va muy lento {loc} y se cae a menudo.",
            "Very slow wifi {loc}",
            "The wifi is very slow {loc} and keeps dropping.",
        ),
        (
            "Switch de la planta 2 caído",
            "El switch de la planta 2 parece caído y ningún puesto tiene red.",
            "Floor 2 switch down",
            "The floor 2 switch seems to be down and no desk has network.",
        ),
        (
            "Cable de red sin conexión",
            "El cable de red del puesto no da conexión y aparece red no identificada.",
            "Ethernet cable not connecting",
            "The network cable at my desk gives no connection and shows unidentified network.",
        ),
        (
            "No resuelve nombres DNS",
            "El equipo no resuelve nombres DNS y las webs internas no cargan.",
            "DNS not resolving",
            "My machine is not resolving DNS names and internal sites do not load.",
        ),
        (
            "Pérdida de paquetes con la sede de {city}",
            "Hay pérdida de paquetes y mucha latencia en la conexión con la sede de {city}.",
            "Packet loss to {city} office",
            "We see packet loss and high latency on the link to the {city} office.",
        ),
        (
            "Punto de acceso wifi sin señal",
            "El punto de acceso wifi de la sala de reuniones no emite señal.",
            "Wireless access point down",
            "The wireless access point in the meeting room is not broadcasting.",
        ),
        (
            "Unidades de red inaccesibles",
            "No puedo acceder a las unidades de red porque no encuentra la ruta de red.",
            "Network drives unreachable",
            "I cannot reach the network drives, it says the network path was not found.",
        ),
        (
            "Cortes de red intermitentes",
            "Tenemos cortes de red intermitentes {loc} {since}.",
            "Intermittent network outages",
            "We have intermittent network outages {loc} {since}.",
        ),
        (
            "Abrir puerto en el firewall",
            "Necesitamos abrir un puerto en el firewall para la conexión de un proveedor.",
            "Firewall port opening request",
            "We need a firewall port opened for a vendor connection.",
        ),
        (
            "No obtiene dirección IP",
            "El portátil no obtiene dirección IP por DHCP al conectarse a la red.",
            "No IP address from DHCP",
            "The laptop does not get an IP address from DHCP on the network.",
        ),
        (
            "Wifi de invitados no funciona",
            "La red wifi de invitados no funciona y hoy tenemos visitas.",
            "Guest wifi not working",
            "The guest wifi is not working and we have visitors today.",
        ),
        (
            "Roseta de red dañada {loc}",
            "La roseta de red del puesto {loc} está dañada y no hay conexión.",
            "Damaged network wall port {loc}",
            "The network wall port at the desk {loc} is damaged and there is no link.",
        ),
        (
            "Conexión lenta con {app}",
            "La conexión con {app} va muy lenta y el ping da tiempos altísimos.",
            "Slow connection to {app}",
            "The connection to {app} is very slow and ping times are huge.",
        ),
    ),
    "Software": (
        (
            "{sw} se cierra solo",
            "{sw} se cierra inesperadamente cada vez que abro un archivo grande.",
            "{sw} keeps crashing",
            "{sw} crashes unexpectedly whenever I open a large file.",
        ),
        (
            "Instalar {sw} en mi equipo",
            "Necesito que me instalen {sw} en el equipo para un proyecto nuevo.",
            "Please install {sw}",
            "I need {sw} installed on my computer for a new project.",
        ),
        (
            "Error al actualizar Windows",
            "La actualización de Windows falla con el error 0x80070005 y vuelve atrás.",
            "Windows update failing",
            "Windows update fails with error 0x80070005 and rolls back.",
        ),
        (
            "{sw} no responde",
            "{sw} se queda congelado y no responde {since}.",
            "{sw} not responding",
            "{sw} freezes and stops responding {since}.",
        ),
        (
            "Licencia de {sw} caducada",
            "Me sale un aviso de licencia caducada al abrir {sw}.",
            "{sw} license expired",
            "I get a license expired message when opening {sw}.",
        ),
        (
            "Excel se bloquea con las macros",
            "Excel se bloquea al ejecutar las macros del informe mensual.",
            "Excel freezes running macros",
            "Excel freezes when running the monthly report macros.",
        ),
        (
            "Error en SAP GUI al abrir transacción",
            "SAP GUI muestra un error de ejecución al abrir la transacción de pedidos.",
            "SAP GUI dump on transaction",
            "SAP GUI shows a runtime error when opening the purchase order transaction.",
        ),
        (
            "Teams no carga las reuniones",
            "Teams se queda en blanco y no carga el calendario de reuniones.",
            "Teams stuck on loading",
            "Teams shows a blank screen and never loads my meetings.",
        ),
        (
            "Actualizar versión de {sw}",
            "Hay que actualizar {sw} a la última versión porque la actual da fallos.",
            "Upgrade {sw} to latest version",
            "{sw} needs to be upgraded because the current version is buggy.",
        ),
        (
            "El antivirus bloquea una aplicación",
            "El antivirus bloquea la aplicación de nóminas y no puedo abrirla.",
            "Antivirus blocking an application",
            "The antivirus is blocking the payroll application so I cannot open it.",
        ),
        (
            "Adobe no abre los PDF",
            "Adobe Reader no abre los PDF y muestra un error de archivo dañado.",
            "Adobe cannot open PDFs",
            "Adobe Reader will not open PDFs and says the file is damaged.",
        ),
        (
            "El navegador no carga la intranet",
            "Chrome no carga bien la intranet y los botones no hacen nada.",
            "Browser not loading intranet",
            "Chrome does not load the intranet properly and the buttons do nothing.",
        ),
        (
            "Error de Java en la aplicación de facturación",
            "La aplicación interna de facturación da un error de Java al iniciar.",
            "Java error in billing app",
            "The internal billing app throws a Java error on startup.",
        ),
        (
            "Desinstalar programa antiguo",
            "Quiero desinstalar un programa antiguo que ralentiza el equipo.",
            "Uninstall old program",
            "I want to uninstall an old program that slows my computer down.",
        ),
        (
            "Office pide reparar la instalación",
            "Office pide reparar la instalación cada vez que abro Word.",
            "Office asks for repair",
            "Office keeps asking to repair the installation whenever I open Word.",
        ),
        (
            "{sw} da error al guardar",
            "{sw} muestra un error inesperado al guardar los cambios.",
            "{sw} error when saving",
            "{sw} shows an unexpected error when saving changes.",
        ),
        (
            "Problema con {sw}",
            "{sw} no funciona bien {since}.",
            "Issue with {sw}",
            "{sw} is not working properly {since}.",
        ),
    ),
    "Correo": (
        (
            "No recibo correos externos",
            "No me llegan correos de clientes externos {since}.",
            "Not receiving external emails",
            "I am not receiving emails from external customers {since}.",
        ),
        (
            "Outlook no sincroniza",
            "Outlook no sincroniza la bandeja de entrada y se queda en desconectado.",
            "Outlook not syncing",
            "Outlook does not sync my inbox and shows disconnected.",
        ),
        (
            "Tengo el buzón lleno",
            "Me dice que el buzón está lleno y no puedo enviar mensajes.",
            "My mailbox is full",
            "It says my mailbox is full and I cannot send messages.",
        ),
        (
            "Correo rebotado con error 550",
            "Los correos a un proveedor rebotan con el error 550 de destinatario desconocido.",
            "Emails bouncing with 550 error",
            "Emails to a supplier bounce back with a 550 recipient unknown error.",
        ),
        (
            "Crear lista de distribución",
            "Necesitamos una lista de distribución de correo para el equipo de {dept}.",
            "Create distribution list",
            "We need an email distribution list for the {dept} team.",
        ),
        (
            "Acceso al buzón compartido de {dept}",
            "Necesito ver el buzón compartido de {dept} en Outlook.",
            "Shared mailbox for {dept}",
            "I need the {dept} shared mailbox added to my Outlook.",
        ),
        (
            "Correos en la carpeta de spam",
            "Los correos de un cliente importante llegan siempre a la carpeta de spam.",
            "Emails going to spam",
            "Emails from an important customer always land in the spam folder.",
        ),
        (
            "La firma de correo no aparece",
            "La firma de correo no aparece al responder mensajes en Outlook.",
            "Email signature missing",
            "My email signature does not show when replying in Outlook.",
        ),
        (
            "Configurar correo en el móvil",
            "Quiero configurar el correo corporativo en el móvil nuevo.",
            "Set up email on new phone",
            "I want to set up my work email on my new phone.",
        ),
        (
            "Correo sospechoso de phishing",
            "He recibido un correo sospechoso de phishing que pide mis datos bancarios.",
            "Suspicious phishing email",
            "I received a suspicious phishing email asking for my bank details.",
        ),
        (
            "No se abren los adjuntos",
            "No puedo abrir los archivos adjuntos que recibo en Outlook.",
            "Cannot open attachments",
            "I cannot open the attachments I receive in Outlook.",
        ),
        (
            "Calendario compartido no se actualiza",
            "El calendario compartido de {dept} no muestra las citas nuevas.",
            "Shared calendar not updating",
            "The {dept} shared calendar does not show new appointments.",
        ),
        (
            "Respuesta automática de vacaciones",
            "Necesito activar la respuesta automática del correo porque me voy de vacaciones.",
            "Out of office reply",
            "I need to turn on the out of office email reply because I am going on holiday.",
        ),
        (
            "Mensajes atascados en la bandeja de salida",
            "Los mensajes se quedan en la bandeja de salida y no se envían.",
            "Messages stuck in outbox",
            "Messages stay in the outbox and are never sent.",
        ),
        (
            "Outlook muy lento con el buzón",
            "Outlook tarda mucho en abrir el buzón y en buscar correos antiguos.",
            "Outlook slow opening mailbox",
            "Outlook takes ages to open my mailbox and search old emails.",
        ),
        (
            "Recuperar correos borrados",
            "He borrado por error una carpeta de correos y necesito recuperarla.",
            "Recover deleted emails",
            "I deleted a mail folder by mistake and need it recovered.",
        ),
    ),
    "Impresoras": (
        (
            "{printer} no imprime",
            "{printer} no imprime y los trabajos se quedan en cola {since}.",
            "{printer} not printing",
            "{printer} is not printing and jobs stay in the queue {since}.",
        ),
        (
            "Atasco de papel en {printer}",
            "{printer} tiene un atasco de papel que no consigo quitar.",
            "Paper jam in {printer}",
            "{printer} has a paper jam I cannot clear.",
        ),
        (
            "Impresora sin tóner",
            "La impresora {loc} se ha quedado sin tóner.",
            "Printer out of toner",
            "The printer {loc} is out of toner.",
        ),
        (
            "La impresión sale en blanco",
            "Las hojas salen en blanco o con rayas al imprimir.",
            "Prints coming out blank",
            "Pages come out blank or streaky when printing.",
        ),
        (
            "Instalar impresora en mi portátil",
            "Necesito que me instalen {printer} en el portátil.",
            "Install printer on my laptop",
            "Please install {printer} on my laptop.",
        ),
        (
            "El escáner no envía al correo",
            "El escáner de la multifunción no envía los documentos escaneados al correo.",
            "Scan to email not working",
            "The scanner on the multifunction printer does not send scans to email.",
        ),
        (
            "Cola de impresión bloqueada",
            "La cola de impresión está bloqueada y no se puede cancelar ningún trabajo.",
            "Print queue stuck",
            "The print queue is stuck and I cannot cancel any job.",
        ),
        (
            "Error de fusor en la impresora",
            "{printer} muestra un error de fusor en la pantalla.",
            "Printer fuser error",
            "{printer} shows a fuser error on the display.",
        ),
        (
            "La impresora aparece desconectada",
            "{printer} aparece como desconectada en el equipo.",
            "Printer shows offline",
            "{printer} shows as offline on my computer.",
        ),
        (
            "No imprime en color",
            "La impresora solo imprime en blanco y negro aunque elijo color.",
            "Cannot print in color",
            "The printer only prints in black and white even when I choose color.",
        ),
        (
            "Impresión a doble cara no funciona",
            "La impresión a doble cara no funciona y siempre sale por una cara.",
            "Duplex printing not working",
            "Double-sided printing is not working and it always prints one side.",
        ),
        (
            "Impresora de etiquetas descalibrada",
            "La impresora de etiquetas Zebra imprime las etiquetas descolocadas.",
            "Label printer misaligned",
            "The Zebra label printer prints the labels misaligned.",
        ),
        (
            "El tóner nuevo deja manchas",
            "El tóner nuevo deja manchas en todas las páginas impresas.",
            "New toner leaves smudges",
            "The new toner cartridge leaves smudges on every printed page.",
        ),
        (
            "Impresión muy lenta",
            "La impresión tarda muchísimo y cada página sale después de varios minutos.",
            "Printing extremely slow",
            "Printing takes forever and each page comes out after several minutes.",
        ),
        (
            "Solicitud de cartuchos de tinta",
            "Necesitamos cartuchos de tinta para {printer}.",
            "Need ink cartridges",
            "We need ink cartridges for {printer}.",
        ),
        (
            "PIN de impresión no funciona",
            "El PIN para liberar la impresión no funciona en {printer}.",
            "Print release PIN not accepted",
            "My print release PIN is not accepted at {printer}.",
        ),
    ),
    "Base de datos": (
        (
            "Consulta muy lenta en {db}",
            "Las consultas a {db} tardan varios minutos {since}.",
            "Slow queries on {db}",
            "Queries against {db} take several minutes {since}.",
        ),
        (
            "Error ORA-12541 al conectar",
            "Al conectar a la base de datos Oracle sale el error ORA-12541 sin listener.",
            "ORA-12541 when connecting",
            "Connecting to the Oracle database fails with ORA-12541 no listener.",
        ),
        (
            "Tabla bloqueada en producción",
            "Hay una tabla bloqueada en {dbname} y los procesos se quedan esperando.",
            "Locked table in production",
            "A table is locked in {dbname} and jobs are waiting on it.",
        ),
        (
            "Restaurar copia de {dbname}",
            "Necesitamos restaurar la copia de seguridad de {dbname} de anoche.",
            "Restore database backup",
            "We need last night's backup of {dbname} restored.",
        ),
        (
            "Tablespace lleno en Oracle",
            "El tablespace de {dbname} está lleno y las inserciones fallan.",
            "Oracle tablespace full",
            "The {dbname} tablespace is full and inserts are failing.",
        ),
        (
            "Usuario de solo lectura en la BD",
            "Necesito un usuario de solo lectura en {dbname} para sacar informes.",
            "Read-only DB user request",
            "I need a read-only user on {dbname} to run reports.",
        ),
        (
            "Deadlock en la base de datos",
            "Aparecen deadlocks en {db} cuando se ejecuta el proceso nocturno.",
            "Deadlocks on the database",
            "We see deadlocks on {db} when the nightly job runs.",
        ),
        (
            "Réplica de base de datos desincronizada",
            "La réplica de {dbname} va con varias horas de retraso.",
            "Database replica lagging",
            "The {dbname} replica is several hours behind.",
        ),
        (
            "Registros duplicados en la tabla de clientes",
            "Hay registros duplicados en la tabla de clientes de {dbname}.",
            "Duplicate rows in customer table",
            "There are duplicate rows in the {dbname} customer table.",
        ),
        (
            "Falló el backup nocturno de la BD",
            "El backup nocturno de {dbname} ha fallado y no hay copia de hoy.",
            "Nightly DB backup failed",
            "The nightly backup of {dbname} failed and there is no copy from today.",
        ),
        (
            "Ejecutar script en {dbname}",
            "Necesitamos ejecutar un script de corrección de datos en {dbname}.",
            "Run script on {dbname}",
            "We need a data fix script run on {dbname}.",
        ),
        (
            "Servidor {db} sin espacio",
            "El servidor de {db} se está quedando sin espacio para los ficheros de log.",
            "{db} server running out of space",
            "The {db} server is running out of space for transaction log files.",
        ),
        (
            "Índice corrupto en {dbname}",
            "Una consulta falla por un índice corrupto en {dbname}.",
            "Corrupt index on {dbname}",
            "A query fails because of a corrupt index on {dbname}.",
        ),
        (
            "Procedimiento almacenado da error",
            "Un procedimiento almacenado de {dbname} devuelve error de clave duplicada.",
            "Stored procedure returning error",
            "A stored procedure in {dbname} returns a duplicate key error.",
        ),
        (
            "Migración de esquema pendiente",
            "Hay que aplicar una migración de esquema en {dbname} antes del despliegue.",
            "Pending schema migration",
            "A schema migration must be applied to {dbname} before the release.",
        ),
        (
            "Conexiones agotadas en {db}",
            "El pool de conexiones de {db} está agotado y la aplicación da error.",
            "{db} connection pool exhausted",
            "The {db} connection pool is exhausted and the app is throwing errors.",
        ),
    ),
}

# Tickets whose text genuinely points at two causes; the true cause is either one.
AMBIGUOUS: tuple[tuple[tuple[str, ...], Template], ...] = (
    (
        ("Correo", "Red"),
        (
            "No puedo entrar al correo desde la VPN",
            "Cuando estoy conectado a la VPN Outlook no carga el correo.",
            "Cannot reach email over VPN",
            "When I am on the VPN Outlook does not load my email.",
        ),
    ),
    (
        ("Impresoras", "Red"),
        (
            "La impresora de red no responde",
            "La impresora de red {loc} no responde y parece que no tiene conexión.",
            "Network printer not responding",
            "The network printer {loc} is not responding and seems to have no connection.",
        ),
    ),
    (
        ("Accesos", "Base de datos"),
        (
            "Error de login en la base de datos",
            "Al conectar a {dbname} me dice usuario o contraseña incorrectos.",
            "Login failed on database",
            "Connecting to {dbname} says invalid username or password.",
        ),
    ),
    (
        ("Software", "Correo"),
        (
            "Outlook se cierra al abrir",
            "Outlook se cierra solo nada más abrirlo {since}.",
            "Outlook crashes on launch",
            "Outlook closes by itself right after opening {since}.",
        ),
    ),
    (
        ("Hardware", "Red"),
        (
            "El portátil no conecta al wifi",
            "El portátil no detecta ninguna red wifi y puede que la tarjeta esté mal.",
            "Laptop cannot see wifi",
            "My laptop does not detect any wifi network, maybe the wireless card is faulty.",
        ),
    ),
    (
        ("Software", "Impresoras"),
        (
            "No puedo imprimir desde SAP",
            "Al imprimir desde SAP sale un error y el documento no llega a la impresora.",
            "Cannot print from SAP",
            "Printing from SAP gives an error and nothing reaches the printer.",
        ),
    ),
    (
        ("Accesos", "Correo"),
        (
            "No puedo acceder a mi buzón",
            "Outlook me pide la contraseña una y otra vez y no entra al buzón.",
            "Cannot access my mailbox",
            "Outlook keeps asking for my password and never opens my mailbox.",
        ),
    ),
    (
        ("Software", "Base de datos"),
        (
            "Informe de Power BI sin datos",
            "El informe de Power BI sale vacío y no sé si falla la aplicación o la base de datos.",
            "Power BI report empty",
            "The Power BI report is empty and I am not sure if the app or the database is failing.",
        ),
    ),
    (
        ("Red", "Accesos"),
        (
            "La VPN rechaza mis credenciales",
            "La VPN rechaza mi usuario y contraseña al conectar desde casa.",
            "VPN rejects my credentials",
            "The VPN rejects my username and password when connecting from home.",
        ),
    ),
    (
        ("Hardware", "Impresoras"),
        (
            "La impresora hace ruido y no coge papel",
            "La impresora hace un ruido fuerte y el rodillo no arrastra el papel.",
            "Printer grinding, not feeding paper",
            "The printer makes a grinding noise and the roller does not pull the paper.",
        ),
    ),
    (
        ("Red", "Base de datos"),
        (
            "Timeout al conectar con la base de datos",
            "La aplicación da timeout al conectar con {db} y no sé si es la red.",
            "Timeout connecting to database",
            "The app times out connecting to {db} and I wonder if it is the network.",
        ),
    ),
    (
        ("Hardware", "Software"),
        (
            "El equipo se congela con {sw}",
            "El equipo se congela cada vez que abro {sw}.",
            "Computer freezes with {sw}",
            "My computer freezes every time I open {sw}.",
        ),
    ),
    (
        ("Red", "Software"),
        (
            "Teams se corta en las llamadas",
            "En las llamadas de Teams se corta el audio y el vídeo cada poco.",
            "Teams calls keep dropping",
            "Teams calls keep dropping audio and video every few minutes.",
        ),
    ),
)

# Under-specified tickets: the text fits several causes about equally well.
VAGUE: tuple[tuple[tuple[str, ...], Template], ...] = (
    (
        ("Accesos", "Software", "Base de datos"),
        (
            "SAP no funciona",
            "SAP no funciona {since} y no puedo trabajar.",
            "SAP is not working",
            "SAP is not working {since} and I cannot work.",
        ),
    ),
    (
        ("Hardware", "Software", "Red"),
        (
            "El equipo va muy lento",
            "El equipo va muy lento {since} y no puedo trabajar bien.",
            "Computer very slow",
            "My computer is very slow {since} and I cannot work properly.",
        ),
    ),
    (
        ("Red", "Software", "Base de datos"),
        (
            "El ERP va muy lento",
            "El ERP va muy lento al sacar informes {since}.",
            "The ERP is very slow",
            "The ERP is very slow when running reports {since}.",
        ),
    ),
    (
        ("Accesos", "Correo", "Software"),
        (
            "Problema con Outlook",
            "Outlook no funciona bien {since}.",
            "Problem with Outlook",
            "Outlook is not working properly {since}.",
        ),
    ),
    (
        ("Accesos", "Red", "Software"),
        (
            "No puedo entrar en la intranet",
            "No puedo entrar en la intranet {since}.",
            "Cannot open the intranet",
            "I cannot get into the intranet {since}.",
        ),
    ),
    (
        ("Hardware", "Impresoras", "Software"),
        (
            "No puedo imprimir nada",
            "No puedo imprimir nada desde el equipo {since}.",
            "Unable to print anything",
            "I cannot print anything from my computer {since}.",
        ),
    ),
    (
        ("Accesos", "Software", "Red"),
        (
            "Error al abrir Teams",
            "Teams da un error al abrirlo {since}.",
            "Error opening Teams",
            "Teams throws an error when I open it {since}.",
        ),
    ),
)

# --------------------------------------------------------------------------------------
# Slot values, per language: "es" / "en".
# --------------------------------------------------------------------------------------

SLOTS: dict[str, dict[str, tuple[str, ...]]] = {
    "es": {
        "app": (
            "SAP",
            "Outlook",
            "Teams",
            "SharePoint",
            "Salesforce",
            "Jira",
            "el portal de RRHH",
            "Citrix",
            "Oracle",
            "Windows",
            "el ERP",
        ),
        "sw": (
            "Excel",
            "Word",
            "SAP GUI",
            "AutoCAD",
            "Adobe Reader",
            "Chrome",
            "Teams",
            "Power BI",
            "Zoom",
            "Visual Studio Code",
        ),
        "device": (
            "el portátil",
            "el monitor",
            "el ordenador",
            "la docking station",
            "el equipo de sobremesa",
        ),
        "printer": (
            "la impresora HP",
            "la impresora de la planta 2",
            "la multifunción Ricoh",
            "la impresora Canon de recepción",
            "el plotter de ingeniería",
        ),
        "db": ("Oracle", "SQL Server", "PostgreSQL", "MySQL"),
        "dbname": ("ERP_PRD", "CRM_DB", "DWH_VENTAS", "NOMINAS", "STOCK_PRD"),
        "dept": (
            "Finanzas",
            "Compras",
            "RRHH",
            "Logística",
            "Ventas",
            "Marketing",
            "Calidad",
        ),
        "loc": (
            "en la planta 2",
            "en la sede de Madrid",
            "en el almacén",
            "en recepción",
            "en la sala de reuniones 3",
            "en la oficina de Valencia",
            "en el edificio B",
            "en la planta 1",
        ),
        "since": (
            "desde esta mañana",
            "desde ayer",
            "desde el lunes",
            "desde la última actualización",
            "desde hace una hora",
            "otra vez",
        ),
        "city": (
            "Madrid",
            "Barcelona",
            "Valencia",
            "Sevilla",
            "Bilbao",
            "México",
            "Bogotá",
        ),
    },
    "en": {
        "app": (
            "SAP",
            "Outlook",
            "Teams",
            "SharePoint",
            "Salesforce",
            "Jira",
            "the HR portal",
            "Citrix",
            "Oracle",
            "Windows",
            "the ERP",
        ),
        "sw": (
            "Excel",
            "Word",
            "SAP GUI",
            "AutoCAD",
            "Adobe Reader",
            "Chrome",
            "Teams",
            "Power BI",
            "Zoom",
            "Visual Studio Code",
        ),
        "device": (
            "my laptop",
            "the monitor",
            "my desktop PC",
            "the docking station",
            "the workstation",
        ),
        "printer": (
            "the HP printer",
            "the floor 2 printer",
            "the Ricoh MFP",
            "the Canon printer at reception",
            "the engineering plotter",
        ),
        "db": ("Oracle", "SQL Server", "PostgreSQL", "MySQL"),
        "dbname": ("ERP_PRD", "CRM_DB", "DWH_VENTAS", "NOMINAS", "STOCK_PRD"),
        "dept": (
            "Finance",
            "Procurement",
            "HR",
            "Logistics",
            "Sales",
            "Marketing",
            "Quality",
        ),
        "loc": (
            "on floor 2",
            "at the Madrid office",
            "in the warehouse",
            "at reception",
            "in meeting room 3",
            "at the Valencia office",
            "in building B",
            "on floor 1",
        ),
        "since": (
            "since this morning",
            "since yesterday",
            "since Monday",
            "since the last update",
            "for an hour now",
            "again",
        ),
        "city": (
            "Madrid",
            "Barcelona",
            "Valencia",
            "Seville",
            "Bilbao",
            "Mexico City",
            "Bogota",
        ),
    },
}

GREETINGS: dict[str, tuple[str, ...]] = {
    "es": (
        "Hola equipo,",
        "Hola,",
        "Buenos días,",
        "Buenas tardes,",
        "Hola soporte,",
        "Buenas,",
    ),
    "en": ("Hi team,", "Hello,", "Good morning,", "Hi IT,", "Hi,"),
}

FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    "es": (
        "Es urgente, tengo una entrega hoy.",
        "Afecta a todo el departamento.",
        "No es urgente, cuando podáis.",
        "Lo necesito antes de las 12.",
        "Estoy bloqueado y no puedo trabajar.",
        "Le pasa también a otros compañeros.",
        "Ya he reiniciado el equipo y sigue igual.",
        "Adjunto captura del error.",
        "¿Podéis revisarlo lo antes posible?",
        "Es la segunda vez que pasa esta semana.",
    ),
    "en": (
        "This is urgent, I have a deadline today.",
        "The whole team is affected.",
        "Not urgent, whenever you can.",
        "I need this before noon.",
        "I am blocked and cannot work.",
        "Other colleagues have the same issue.",
        "I already restarted and it is still the same.",
        "Screenshot attached.",
        "Can you please take a look asap?",
        "This is the second time this week.",
    ),
}

CLOSINGS: dict[str, tuple[str, ...]] = {
    "es": (
        "Gracias.",
        "Saludos.",
        "Muchas gracias.",
        "Un saludo.",
        "Gracias de antemano.",
    ),
    "en": ("Thanks.", "Thank you.", "Regards.", "Thanks in advance.", "Cheers."),
}

URGENT_PREFIXES: dict[str, tuple[str, ...]] = {
    "es": ("URGENTE:", "Urgente -"),
    "en": ("URGENT:", "ASAP -"),
}

MAX_SHORT_WORDS = 10
_WORD = re.compile(r"[^\W\d_]{4,}")

# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoTicket:
    short_description: str
    description: str
    cause: str  # the hidden true cause, one of CAUSES


def generate(n: int, *, seed: int = 42, start: int = 0) -> list[DemoTicket]:
    """Return ``n`` synthetic tickets; the same ``(n, seed, start)`` always gives the same list.

    Ticket ``i`` is drawn from ``random.Random(f"{seed}:{start + i}")``, so ``start`` shifts
    the window: ``generate(10, seed=1, start=10)`` continues ``generate(10, seed=1)``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_ticket(random.Random(f"{seed}:{start + i}")) for i in range(n)]  # noqa: S311 (data, not crypto)


def _ticket(rng: random.Random) -> DemoTicket:
    cause, template = _pick_cause_and_template(rng)
    lang = "es" if rng.random() < SPANISH_SHARE else "en"
    other = "en" if lang == "es" else "es"
    short_lang = frame_lang = lang
    # A mixed ticket has its subject, or its greeting/follow-up/closing, in the other language.
    if rng.random() < MIXED_SHARE:
        if rng.random() < 0.5:
            short_lang = other
        else:
            frame_lang = other

    # Slot tables are parallel across languages, so one index per slot keeps both texts consistent.
    picks = {name: rng.randrange(len(values)) for name, values in SLOTS["es"].items()}
    short = _fill(template[0 if short_lang == "es" else 2], _slot_values(short_lang, picks))
    body = _fill(template[1 if lang == "es" else 3], _slot_values(lang, picks))

    short = _maybe_urgent(rng, short, short_lang)
    description = _compose(rng, body, frame_lang)
    if rng.random() < TYPO_SHARE:
        if rng.random() < 0.4:
            short = _typo(rng, short)
        else:
            description = _typo(rng, description)
    return DemoTicket(short_description=short, description=description, cause=cause)


def _pick_cause_and_template(rng: random.Random) -> tuple[str, Template]:
    draw = rng.random()
    if draw < AMBIGUOUS_SHARE + VAGUE_SHARE:
        causes, template = rng.choice(AMBIGUOUS if draw < AMBIGUOUS_SHARE else VAGUE)
        return rng.choice(causes), template
    cause = rng.choices(CAUSES, weights=[CAUSE_WEIGHTS[c] for c in CAUSES])[0]
    return cause, rng.choice(TEMPLATES[cause])


def _slot_values(lang: str, picks: dict[str, int]) -> dict[str, str]:
    return {name: SLOTS[lang][name][index] for name, index in picks.items()}


def _fill(template: str, slots: dict[str, str]) -> str:
    text = template.format_map(slots)
    return text[:1].upper() + text[1:]


def _maybe_urgent(rng: random.Random, short: str, lang: str) -> str:
    if rng.random() < URGENT_PREFIX_SHARE and len(short.split()) < MAX_SHORT_WORDS - 1:
        return f"{rng.choice(URGENT_PREFIXES[lang])} {short}"
    return short


def _compose(rng: random.Random, body: str, lang: str) -> str:
    """Greeting, the body sentence, maybe a follow-up, maybe a closing (<= 3 sentences)."""
    lines: list[str] = []
    if rng.random() < 0.55:
        lines.append(rng.choice(GREETINGS[lang]))
    sentences = [body]
    if rng.random() < 0.45:
        sentences.append(rng.choice(FOLLOW_UPS[lang]))
    lines.append(" ".join(sentences))
    if rng.random() < 0.5:
        lines.append(rng.choice(CLOSINGS[lang]))
    return "\n".join(lines)


def _typo(rng: random.Random, text: str) -> str:
    """Introduce one realistic typo: a missing accent, a dropped letter or two swapped letters."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    accented = [m for m in words if _strip_accents(m.group()) != m.group()]
    if accented and rng.random() < 0.5:
        match = rng.choice(accented)
        typo = _strip_accents(match.group())
    else:
        match = rng.choice(words)
        word = match.group()
        pos = rng.randrange(1, len(word) - 1)
        if rng.random() < 0.5:
            typo = word[:pos] + word[pos + 1 :]
        else:
            typo = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
    return text[: match.start()] + typo + text[match.end() :]


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", kept)
